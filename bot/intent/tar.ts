/**
 * Reads the two model files out of an uploaded tar archive (POSIX ustar / GNU tar, optionally gzip-compressed:
 * what `tar -czf - -C models/support .` produces). Only regular files named model.onnx and model.json are taken,
 * at the top level or in one folder; everything else is skipped. Nothing is written to disk.
 */
import { gunzipSync } from 'node:zlib';
import { ModelValidationError, type ModelFiles } from './bundle.js';

const BLOCK = 512;

function field(header: Uint8Array, offset: number, length: number): string {
  const raw = header.subarray(offset, offset + length);
  const end = raw.indexOf(0);
  return Buffer.from(end >= 0 ? raw.subarray(0, end) : raw).toString('utf8');
}

function octal(header: Uint8Array, offset: number, length: number): number {
  const s = field(header, offset, length).trim();
  return s ? parseInt(s, 8) : 0;
}

export function filesFromTar(upload: Uint8Array): ModelFiles {
  let data = upload;
  if (data[0] === 0x1f && data[1] === 0x8b) {
    try {
      data = gunzipSync(data);
    } catch (err) {
      throw new ModelValidationError('archive_invalid', `the upload is not a valid gzip stream: ${(err as Error).message}`);
    }
  }
  const found: Partial<Record<'model.onnx' | 'model.json', Uint8Array>> = {};
  let longName: string | undefined;
  for (let at = 0; at + BLOCK <= data.length; ) {
    const header = data.subarray(at, at + BLOCK);
    if (header.every((b) => b === 0)) break; // end-of-archive marker
    const checksum = octal(header, 148, 8);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
    if (sum !== checksum) throw new ModelValidationError('archive_invalid', 'the upload is not a tar archive (header checksum mismatch)');
    const size = octal(header, 124, 12);
    const type = String.fromCharCode(header[156] || 0x30);
    const prefix = field(header, 345, 155);
    const name = longName ?? (prefix ? `${prefix}/${field(header, 0, 100)}` : field(header, 0, 100));
    longName = undefined;
    const body = data.subarray(at + BLOCK, at + BLOCK + size);
    if (body.length < size) throw new ModelValidationError('archive_invalid', `the tar archive is truncated inside ${name}`);
    if (type === 'L') longName = Buffer.from(body).toString('utf8').replace(/\0+$/, ''); // GNU long name
    else if (type === '0' || type === '\0') {
      const parts = name.replace(/^\.\//, '').split('/').filter(Boolean);
      const base = parts.at(-1);
      if (parts.length <= 2 && (base === 'model.onnx' || base === 'model.json')) found[base] = body;
    }
    at += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
  }
  if (!found['model.onnx'] || !found['model.json']) {
    throw new ModelValidationError('model_files_missing', 'the archive must contain model.onnx and model.json');
  }
  return { onnx: found['model.onnx'], manifest: found['model.json'] };
}
