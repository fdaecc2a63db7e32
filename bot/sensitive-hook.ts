/** The outbound side of the sensitive-word filter: an outbound hook that blocks messages containing listed words. */
import { LRUCache } from 'lru-cache';
import type { OutboundHook } from '../gateway/outbound-hooks.js';
import { contentAsText } from '../gateway/message.js';
import type { SensitiveWords } from './sensitive.js';

/**
 * Replies repeat — knowledge-base answers, intent templates — and every one is checked before it goes out: the
 * verdict per text is remembered (the words found, '' for none), for the word list it was found with. Bounded by
 * count and by characters, least recently used out.
 */
const VERDICTS = { max: 2_000, maxSize: 2_000_000 };

export function sensitiveOutboundHook(words: () => SensitiveWords, mode: 'all' | 'bot' | 'none'): OutboundHook {
  let checkedWith: SensitiveWords | undefined;
  const verdicts = new LRUCache<string, string>({ ...VERDICTS, sizeCalculation: (found, text) => text.length + found.length + 1 });
  return {
    name: 'sensitive-words',
    beforeSend(message) {
      if (mode === 'none' || (mode === 'bot' && message.sender.role !== 'bot')) return { message };
      const list = words();
      if (list !== checkedWith) {
        checkedWith = list;
        verdicts.clear();
      }
      const text = contentAsText(message.content);
      let found = verdicts.get(text);
      if (found === undefined) {
        found = list.find(text).map((h) => h.word).join(', ');
        verdicts.set(text, found);
      }
      return found === '' ? { message } : { blocked: `contains listed word(s): ${found}` };
    },
  };
}
