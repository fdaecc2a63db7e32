/**
 * createBot: builds the configured bot — context store, entities, sensitive words, rules, knowledge base, intent
 * model and the decision policy — and what it adds to the gateway: an outbound hook (sensitive words) and admin
 * routes (/admin/kb, /admin/rules, /admin/models/intent). Construction is synchronous; `start()` loads what lives
 * in Redis or on disk (KB, admin rules, the intent model) and fails loudly when a configured part cannot load.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import express, { type Router } from 'express';
import type { RedisClient } from '../adapters/types.js';
import type { GatewayEvents } from '../gateway/events.js';
import type { Logger } from '../gateway/logger.js';
import type { UnifiedMessage } from '../gateway/message.js';
import type { OutboundHook } from '../gateway/outbound-hooks.js';
import type { BotConfig } from './config.js';
import { EntityExtractor } from './entities.js';
import type { IntentClassifier } from './intent/types.js';
import { IntentService } from './intent/service.js';
import { kbAdminRoutes } from './kb/admin-routes.js';
import { formatFromName, parseKb } from './kb/formats.js';
import { KnowledgeBase } from './kb/knowledge-base.js';
import { PolicyBot } from './policy.js';
import { RuleSet } from './rules/rule-set.js';
import { sensitiveOutboundHook } from './sensitive-hook.js';
import { SensitiveWords } from './sensitive.js';
import type { Bot } from './types.js';

export interface BotDeps {
  config: BotConfig;
  redis: RedisClient;
  /** Redis key prefix of the gateway. */
  prefix: string;
  log: Logger;
  events?: GatewayEvents;
  /** Later customer messages of a conversation still queued (for per-channel bursts). */
  pendingInbound?: (conversationId: string) => Promise<UnifiedMessage[]>;
  /** Use this classifier instead of loading `config.intent.model` (tests, benchmarks). */
  classifier?: IntentClassifier;
  /** Relative paths in the config (KB seed, word list, model) resolve against this; default: the working directory. */
  baseDir?: string;
  /**
   * Load the intent model only when its admin routes are first used. For processes that never run the bot
   * (ingress): they serve the model-swap API, but holding an ONNX session for it costs ≈ 40 MB of RSS.
   */
  lazyIntent?: boolean;
}

export interface BotParts {
  bot: Bot;
  /** The knowledge base (admin routes and scripts write through it). */
  kb: KnowledgeBase;
  rules: RuleSet;
  /** Hooks for the gateway's outbound stage. */
  hooks: OutboundHook[];
  /** Mounts the bot's admin API on a router already behind the admin key. */
  adminRoutes(router: Router): void;
  start(): Promise<void>;
  close(): Promise<void>;
}

export class BotStartError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BotStartError';
  }
}

/** The configured words plus those of the word-list file (one per line, `#` starts a comment). */
export function loadSensitiveWords(config: BotConfig, baseDir: string): SensitiveWords {
  const words = [...config.sensitive.words];
  if (config.sensitive.file) {
    const path = resolve(baseDir, config.sensitive.file);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new BotStartError(`bot.sensitive.file: cannot read ${path}: ${(err as Error).message}`);
    }
    for (const line of text.split(/\r?\n/)) {
      const word = line.replace(/#.*$/, '').trim();
      if (word) words.push(word);
    }
  }
  return new SensitiveWords(words);
}

export function createBot(deps: BotDeps): BotParts {
  const { config, redis, prefix, log } = deps;
  const baseDir = deps.baseDir ?? process.cwd();
  const botLog = log.child({ component: 'bot' });
  const sensitive = loadSensitiveWords(config, baseDir);
  const rules = new RuleSet(config.rules, redis, prefix, botLog);
  const kb = new KnowledgeBase({ redis, prefix, log: botLog, k1: config.kb.k1, b: config.kb.b });
  let intent: IntentService | undefined;
  const modelRoutes = express.Router();
  const classifier = (): IntentClassifier | undefined => deps.classifier ?? intent;

  const bot = new PolicyBot({
    config,
    log: botLog,
    entities: new EntityExtractor(config.entities),
    rules,
    sensitive,
    kb,
    classifier,
    ...(deps.pendingInbound && { pendingInbound: deps.pendingInbound }),
    onSensitive: (message, words) => {
      botLog.warn({ msgId: message.id, conv: message.conversationId, words }, 'inbound message contains sensitive words');
      deps.events?.emit('message.sensitive', { conversationId: message.conversationId, message, words });
    },
    health: () => classifier()?.health() ?? { ok: true },
  });

  return {
    bot,
    kb,
    rules,
    hooks: [sensitiveOutboundHook(() => sensitive, config.sensitive.blockOutbound)],
    adminRoutes(router) {
      kbAdminRoutes(router, kb, botLog, config.kb.threshold);
      rules.adminRoutes(router);
      // The model's hot-swap routes are added to this sub-router once the model has loaded (start()).
      router.use(modelRoutes);
    },
    async start() {
      await Promise.all([kb.start(), rules.start()]);
      if (config.kb.seed) {
        const path = resolve(baseDir, config.kb.seed);
        const format = formatFromName(path);
        if (!format) throw new BotStartError(`bot.kb.seed: ${path} is not .json, .csv or .md`);
        let entries;
        try {
          entries = parseKb(readFileSync(path, 'utf8'), format);
        } catch (err) {
          throw new BotStartError(`bot.kb.seed: ${path}: ${(err as Error).message}`, { cause: err });
        }
        if (await kb.seedIfEmpty(entries)) botLog.info({ entries: entries.length, file: path }, 'KB seeded from the config');
      }
      if (config.intent.enabled && !deps.classifier) {
        const modelDir = resolve(baseDir, config.intent.model);
        const load = async () => {
          try {
            intent = await IntentService.create({ modelDir, redis, prefix, log: botLog.child({ component: 'intent' }) });
          } catch (err) {
            throw new BotStartError(
              `bot.intent: the intent model at ${modelDir} could not be loaded (${(err as Error).message}). ` +
                'Train one with "npm run train", point bot.intent.model at a model folder, or set bot.intent.enabled: false.',
              { cause: err },
            );
          }
          intent.adminRoutes(modelRoutes);
          botLog.info({ model: intent.status() }, 'intent model loaded');
        };
        if (!deps.lazyIntent) await load();
        else {
          // The routes are added by load(); until then the first request to them loads the model and goes on.
          let loading: Promise<void> | undefined;
          modelRoutes.use('/models', (_req, _res, next) => {
            if (intent) return next();
            loading ??= load().catch((err) => {
              loading = undefined;
              throw err;
            });
            loading.then(() => next(), next);
          });
        }
      }
      botLog.info({ kbEntries: kb.size, kbVersion: kb.version, rules: rules.rules().length, sensitiveWords: sensitive.size }, 'bot started');
    },
    async close() {
      await Promise.all([kb.close(), rules.close(), intent?.close()]);
    },
  };
}
