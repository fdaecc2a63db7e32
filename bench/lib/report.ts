/** How the benchmarks name and write their JSON reports. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';

/** A report's file-name stamp: its UTC date and time, `2026-12-03-19-51-32`. */
export function stampOf(isoDate: string): string {
  return isoDate.slice(0, 19).replace(/[:T]/g, '-');
}

/** Writes `<dir>/<stamp>-<kind>.json`: the date, the machine, then `fields`. Returns the path. */
export function writeReport(dir: string, kind: string, fields: Record<string, unknown>): string {
  const date = new Date().toISOString();
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${stampOf(date)}-${kind}.json`);
  const machine = { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version };
  writeFileSync(path, JSON.stringify({ date, machine, ...fields }, null, 2) + '\n');
  return path;
}
