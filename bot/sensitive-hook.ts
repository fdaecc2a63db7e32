/** The outbound side of the sensitive-word filter: an outbound hook that blocks messages containing listed words. */
import type { OutboundHook } from '../gateway/outbound-hooks.js';
import { contentAsText } from '../gateway/message.js';
import type { SensitiveWords } from './sensitive.js';

export function sensitiveOutboundHook(words: () => SensitiveWords, mode: 'all' | 'bot' | 'none'): OutboundHook {
  return {
    name: 'sensitive-words',
    beforeSend(message) {
      if (mode === 'none' || (mode === 'bot' && message.sender.role !== 'bot')) return { message };
      const hits = words().find(contentAsText(message.content));
      if (hits.length === 0) return { message };
      return { blocked: `contains listed word(s): ${hits.map((h) => h.word).join(', ')}` };
    },
  };
}
