/**
 * Entity capture by configurable patterns (order number, phone, e-mail...). Patterns run in config order and a
 * stretch of text claimed by one entity is not reused by a later one, so an order number's digits never also
 * count as a phone number. Values land in the conversation's slots (context.ts).
 */
import type { EntityPattern } from './config.js';

interface Compiled {
  name: string;
  regex: RegExp;
  normalize: EntityPattern['normalize'];
}

export class EntityExtractor {
  private readonly patterns: Compiled[];
  constructor(patterns: readonly EntityPattern[]) {
    this.patterns = patterns.map((p) => ({ name: p.name, regex: new RegExp(p.regex, `gu${p.caseSensitive ? '' : 'i'}`), normalize: p.normalize }));
  }

  get names(): string[] {
    return this.patterns.map((p) => p.name);
  }

  /** First value of each entity found in `text`. */
  extract(text: string): Record<string, string> {
    const found: Record<string, string> = {};
    const claimed: Array<[number, number]> = [];
    for (const { name, regex, normalize } of this.patterns) {
      regex.lastIndex = 0;
      for (const m of text.matchAll(regex)) {
        const start = m.index;
        const end = start + m[0].length;
        if (claimed.some(([s, e]) => start < e && end > s)) continue;
        claimed.push([start, end]);
        const raw = m.groups?.value ?? m[1] ?? m[0];
        if (found[name] === undefined) found[name] = normalise(raw, normalize);
      }
    }
    return found;
  }
}

function normalise(value: string, how: EntityPattern['normalize']): string {
  const trimmed = value.trim();
  switch (how) {
    case 'upper':
      return trimmed.toUpperCase();
    case 'lower':
      return trimmed.toLowerCase();
    case 'digits':
      return trimmed.replace(/[^\d+]/g, '');
    default:
      return trimmed;
  }
}
