/** The `bot:` section of the config. */
import { z } from 'zod';

const ruleMatch = z
  .object({
    keywords: z.array(z.string().min(1)).optional().describe('Matches when the text contains any of these (case-insensitive)'),
    regex: z
      .string()
      .optional()
      .refine((r) => r === undefined || isValidRegex(r), { message: 'not a valid JavaScript regular expression' })
      .describe('Matches when this regular expression (flags "iu") finds a match in the text'),
    channels: z.array(z.string()).optional().describe('Only on these channel ids'),
  })
  .refine((m) => m.keywords !== undefined || m.regex !== undefined, { message: 'a rule needs keywords or regex' });

export const BotRule = z
  .object({
    id: z.string().min(1),
    match: ruleMatch,
    reply: z.string().optional().describe('Text reply'),
    handoff: z
      .object({
        team: z.string().optional(),
        priority: z.enum(['low', 'normal', 'high', 'urgent']).default('normal'),
      })
      .optional()
      .describe('Hand the conversation to a human'),
  })
  .refine((r) => r.reply !== undefined || r.handoff !== undefined, { message: 'a rule needs a reply or a handoff' });
export type BotRule = z.infer<typeof BotRule>;

export const BotConfig = z
  .object({
    rules: z.array(BotRule).default([]).describe('Ordered keyword/regex rules; the first match wins'),
    fallback: z
      .string()
      .optional()
      .describe('Reply when nothing matched; absent means no reply'),
  })
  .default({ rules: [] });
export type BotConfig = z.infer<typeof BotConfig>;

function isValidRegex(source: string): boolean {
  try {
    new RegExp(source, 'iu');
    return true;
  } catch {
    return false;
  }
}
