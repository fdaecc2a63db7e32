/** Builds real bots over a real Redis for the bot tests, and a small keyword intent classifier to drive the policy. */
import { Writable } from 'node:stream';
import { BotConfig, type BotConfigInput } from '../../bot/config.js';
import { createBot, type BotParts } from '../../bot/index.js';
import type { IntentClassifier, IntentPrediction, IntentThresholds } from '../../bot/intent/types.js';
import type { BotDecision } from '../../bot/types.js';
import { connectRedis } from '../../gateway/redis.js';
import { createMessage, type UnifiedMessage, type UnifiedMessageInput } from '../../gateway/message.js';
import { GatewayEvents } from '../../gateway/events.js';
import { createLogger } from '../../gateway/logger.js';
import type { RedisClient } from '../../adapters/types.js';

/**
 * A transparent classifier for policy tests: each label has keywords; the score of a label is its keyword hits
 * (plus a small floor) normalised to sum to one — so a test controls confidence and margins through the text.
 */
export class KeywordClassifier implements IntentClassifier {
  constructor(
    private readonly keywords: Record<string, string[]>,
    private readonly thresholds: IntentThresholds = { confidence: 0.5, outOfScope: 0.3, ambiguityMargin: 0.15 },
  ) {}
  async predict(text: string): Promise<IntentPrediction> {
    const lower = text.toLowerCase();
    const raw = Object.entries(this.keywords).map(([label, words]) => ({ label, score: 0.1 + words.filter((w) => lower.includes(w)).length }));
    const sum = raw.reduce((s, r) => s + r.score, 0);
    const top = raw.map((r) => ({ label: r.label, score: r.score / sum })).sort((a, b) => b.score - a.score);
    return {
      label: top[0]!.label,
      confidence: top[0]!.score,
      top: top.slice(0, 3),
      modelVersion: 'keywords@1',
      thresholds: this.thresholds,
      outOfScope: top[0]!.score < this.thresholds.outOfScope,
    };
  }
  health() {
    return { ok: true };
  }
}

export interface TestBot {
  parts: BotParts;
  events: GatewayEvents;
  redis: RedisClient;
  /** A customer message: `text`, or `content` when given (an event, an image...). */
  say(text: string, opts?: { user?: string; channel?: string; metadata?: Record<string, string | number | boolean>; content?: UnifiedMessageInput['content'] }): Promise<BotDecision>;
  stop(): Promise<void>;
}

const quietLog = () =>
  createLogger(
    process.env.TEST_LOG_LEVEL ?? 'warn',
    new Writable({
      write(chunk, _enc, cb) {
        if (process.env.TEST_LOG) process.stderr.write(chunk);
        cb();
      },
    }),
  );

export async function startTestBot(
  config: BotConfigInput,
  redisUrl: string,
  opts: { prefix?: string; classifier?: IntentClassifier } = {},
): Promise<TestBot> {
  const redis = connectRedis(redisUrl);
  const events = new GatewayEvents();
  const parts = createBot({
    config: BotConfig.parse(config),
    redis,
    prefix: opts.prefix ?? 'gw',
    log: quietLog(),
    events,
    ...(opts.classifier && { classifier: opts.classifier }),
  });
  await parts.start();
  const turns = new Map<string, number>();
  /** What the bot saved per conversation (the gateway keeps it in the conversation's hash). */
  const states = new Map<string, string>();
  return {
    parts,
    events,
    redis,
    async say(text, { user = 'u1', channel = 'web', metadata = {}, content = { type: 'text' as const, text } } = {}) {
      const conversationId = `${channel}.${user}`;
      const n = (turns.get(conversationId) ?? 0) + 1;
      turns.set(conversationId, n);
      const message: UnifiedMessage = createMessage({
        channel,
        channelType: 'web',
        direction: 'in',
        conversationId,
        sender: { id: user, role: 'customer' },
        content,
        metadata,
      });
      // As the pipeline does: the model run starts first; the state the bot saved comes back with the next message.
      const prepared = parts.bot.prepare?.(message);
      const state = states.get(conversationId);
      const decision = await parts.bot.decide({
        message,
        conversation: { id: conversationId, turns: n, reference: { conversationId, channel, channelType: 'web', peerId: user, context: {}, updatedAt: Date.now() } },
        ...(state !== undefined && { state }),
        ...(prepared && { prepared }),
      });
      if (decision.state !== undefined) states.set(conversationId, decision.state);
      return decision;
    },
    async stop() {
      await parts.close();
      await redis.quit();
    },
  };
}

export const replyText = (d: BotDecision) => d.replies.map((r) => (r.type === 'text' ? r.text : `[${r.type}]`)).join('\n');
