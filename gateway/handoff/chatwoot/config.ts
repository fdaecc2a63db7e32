/** Chatwoot connector settings: where the account is and what resolving a conversation there means here. */
import { z } from 'zod';

export const ChatwootConfig = z.object({
  baseUrl: z.url().describe('Chatwoot installation, e.g. https://app.chatwoot.com'),
  accountId: z.number().int().positive().describe('Numeric account id (the {account_id} in API paths)'),
  inboxId: z.number().int().positive().describe('Id of an inbox of type API that conversations are created in'),
  apiAccessToken: z.string().min(1).describe('An agent or bot access token, sent as the api_access_token header'),
  webhookToken: z
    .string()
    .min(16)
    .describe('Secret path segment of the webhook URL to configure in Chatwoot: <gateway>/v1/chatwoot/webhook/<webhookToken>'),
  onResolve: z.enum(['handback', 'close']).default('handback').describe('Resolving in Chatwoot hands the conversation back to the bot, or closes it'),
  timeoutMs: z.number().int().positive().default(15_000),
});
export type ChatwootConfig = z.infer<typeof ChatwootConfig>;
