/** One FAQ entry of the knowledge base. */
import { z } from 'zod';

export const FAQ_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export const FaqEntry = z.object({
  id: z.string().regex(FAQ_ID, 'letters, digits, ".", "_" or "-", at most 100, starting with a letter or digit'),
  question: z.string().trim().min(1).max(1000),
  paraphrases: z.array(z.string().trim().min(1).max(1000)).max(200).default([]).describe('Other ways customers ask the same'),
  answer: z.string().trim().min(1).max(10_000),
  answers: z.record(z.string(), z.string().trim().min(1).max(10_000)).default({}).describe('Per-channel answers by channel id'),
  tags: z.array(z.string().trim().min(1).max(100)).default([]),
  enabled: z.boolean().default(true),
  updatedAt: z.number().int().nonnegative().optional(),
});
export type FaqEntry = z.infer<typeof FaqEntry>;
export type FaqEntryInput = z.input<typeof FaqEntry>;

/** The answer for a channel: its own when it has one. */
export function answerFor(entry: FaqEntry, channel: string): string {
  return entry.answers[channel] ?? entry.answer;
}
