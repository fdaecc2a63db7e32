/** The `handoff:` section: conversation lifecycle timeouts, transcript retention and the Chatwoot connector. */
import { z } from 'zod';
import { ChatwootConfig } from './chatwoot/config.js';

export const HandoffConfig = z
  .object({
    pickupTimeoutSeconds: z
      .number()
      .positive()
      .default(600)
      .describe('No agent picks up within this after a hand-off → pickupTimeoutMessage to the customer + conversation.pickup_timeout'),
    pickupTimeoutMessage: z
      .string()
      .default('All our agents are busy at the moment. We have your message and will answer as soon as we can.')
      .describe('Sent to the customer when the pick-up timeout fires'),
    pickupTimeoutAction: z
      .enum(['wait', 'bot', 'close'])
      .default('wait')
      .describe('After the timeout message: keep waiting for an agent, hand back to the bot, or close'),
    idleCloseSeconds: z
      .number()
      .min(0)
      .default(3600)
      .describe('Conversations without activity for this long are closed (0 disables)'),
    idleSweepSeconds: z.number().positive().default(30).describe('How often idle conversations are looked for'),
    transcript: z
      .object({
        retentionDays: z
          .number()
          .positive()
          .default(30)
          .describe('Transcripts and their conversations (state, reference, state history) expire this long after the last customer message or state change'),
        maxMessages: z.number().int().positive().default(500).describe('Messages kept per conversation (oldest dropped)'),
      })
      .default({ retentionDays: 30, maxMessages: 500 }),
    webhookTranscriptMessages: z
      .number()
      .int()
      .min(0)
      .default(50)
      .describe('Latest transcript messages included in conversation.handoff_requested'),
    chatwoot: ChatwootConfig.optional().describe('Chatwoot connector (an API-type inbox)'),
  })
  .default({
    pickupTimeoutSeconds: 600,
    pickupTimeoutMessage: 'All our agents are busy at the moment. We have your message and will answer as soon as we can.',
    pickupTimeoutAction: 'wait',
    idleCloseSeconds: 3600,
    idleSweepSeconds: 30,
    transcript: { retentionDays: 30, maxMessages: 500 },
    webhookTranscriptMessages: 50,
  });
export type HandoffConfig = z.infer<typeof HandoffConfig>;
