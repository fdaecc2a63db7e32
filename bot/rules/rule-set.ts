/**
 * The live rule set: rules from the config plus rules managed through the admin API (kept in Redis and mirrored in
 * every process). An admin rule with the id of a config rule replaces it. The engine is rebuilt on every change.
 *
 *   GET    /admin/rules        all rules with their source (config / admin)
 *   PUT    /admin/rules/:id    create or replace an admin rule (JSON body, as in the config; id from the path)
 *   DELETE /admin/rules/:id    remove an admin rule
 */
import express, { type Router } from 'express';
import type { RedisClient } from '../../adapters/types.js';
import { badRequest, notFound, parseJsonBody } from '../../gateway/errors.js';
import type { Logger } from '../../gateway/logger.js';
import { BotRule } from '../config.js';
import { SyncedCollection } from '../synced-collection.js';
import { RuleEngine, type RuleFacts } from './engine.js';

export class RuleSet {
  private engine: RuleEngine;
  private readonly admin: SyncedCollection<BotRule>;

  constructor(
    private readonly configRules: readonly BotRule[],
    redis: RedisClient,
    prefix: string,
    private readonly log: Logger,
  ) {
    this.engine = new RuleEngine(configRules, log);
    this.admin = new SyncedCollection<BotRule>({
      redis,
      key: `${prefix}:bot:rules`,
      log,
      parse: (json) => BotRule.parse(json),
      onChange: () => {
        this.engine = new RuleEngine(this.rules(), log);
      },
    });
  }

  start(): Promise<void> {
    return this.admin.start();
  }
  close(): Promise<void> {
    return this.admin.close();
  }

  /** Config rules (replaced by admin rules of the same id) followed by the other admin rules. */
  rules(): BotRule[] {
    const adminRules = this.admin.all().sort((a, b) => a.id.localeCompare(b.id));
    const adminIds = new Set(adminRules.map((r) => r.id));
    return [...this.configRules.map((r) => (adminIds.has(r.id) ? this.admin.get(r.id)! : r)), ...adminRules.filter((r) => !this.configRules.some((c) => c.id === r.id))];
  }

  /** Validates and stores an admin rule; every process picks it up. Returns the new version. */
  async adminUpsert(input: unknown): Promise<number> {
    return this.admin.upsert([BotRule.parse(input)]);
  }

  evaluate(facts: RuleFacts): Promise<BotRule[]> {
    return this.engine.evaluate(facts);
  }

  adminRoutes(router: Router): void {
    const body = express.raw({ type: () => true, limit: '1mb' });
    router.get('/rules', (_req, res) => {
      const adminIds = new Set(this.admin.all().map((r) => r.id));
      res.json({ version: this.admin.currentVersion, rules: this.rules().map((rule) => ({ ...rule, source: adminIds.has(rule.id) ? 'admin' : 'config' })) });
    });
    router.put('/rules/:id', body, async (req, res) => {
      const parsed = BotRule.safeParse({ ...(parseJsonBody(req.body as Buffer) as object), id: req.params.id });
      if (!parsed.success) {
        throw badRequest('invalid_rule', parsed.error.issues.map((i) => `${i.path.join('.') || 'rule'}: ${i.message}`).join('; '));
      }
      const version = await this.admin.upsert([parsed.data]);
      this.log.info({ ruleId: parsed.data.id, version }, 'rule saved');
      res.json({ rule: parsed.data, version });
    });
    router.delete('/rules/:id', async (req, res) => {
      const id = req.params.id!;
      if (!this.admin.get(id)) throw notFound('unknown_rule', `no admin rule ${id} (config rules are changed in the config file)`);
      const version = await this.admin.remove([id]);
      this.log.info({ ruleId: id, version }, 'rule deleted');
      res.json({ deleted: id, version });
    });
  }
}
