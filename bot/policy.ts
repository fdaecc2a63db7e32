/**
 * The decision policy — the bot the pipeline calls. For each customer message, in this order:
 *
 *   entities → slots · burst (optional, per channel) · sensitive words · rules · explicit hand-off request ·
 *   KB answer above its threshold · intent above its threshold (reply template per intent) ·
 *   clarifying question when top-1 − top-2 < the model's margin · fallback, or hand-off after K unanswered turns
 *
 * The first stage that answers decides; every decision carries a DecisionTrace (stage, scores, model version and
 * top-3, rule/FAQ ids) that travels with the replies and into the log and transcript.
 */
import type { UnifiedMessage, DecisionTrace, Content } from '../gateway/message.js';
import type { Logger } from '../gateway/logger.js';
import type { BotConfig, BotRule } from './config.js';
import { decodeContext, encodeContext, type ConversationContext } from './context.js';
import type { EntityExtractor } from './entities.js';
import type { IntentClassifier, IntentPrediction } from './intent/types.js';
import type { KnowledgeBase } from './kb/knowledge-base.js';
import type { RuleSet } from './rules/rule-set.js';
import { SensitiveWords } from './sensitive.js';
import { renderTemplate } from './template.js';
import type { Bot, BotDecision, BotInput, HandoffRequest } from './types.js';

export interface PolicyDeps {
  config: BotConfig;
  log: Logger;
  entities: EntityExtractor;
  rules: RuleSet;
  sensitive: SensitiveWords;
  kb?: KnowledgeBase;
  /** Resolved lazily: the intent model may be swapped at any time. */
  classifier?: () => IntentClassifier | undefined;
  /** Called for an inbound message that contains listed words (the gateway turns it into an event). */
  onSensitive?: (message: UnifiedMessage, words: string[]) => void;
  /** Later customer messages of this conversation still waiting in the inbound queue (burst detection). */
  pendingInbound?: (conversationId: string) => Promise<UnifiedMessage[]>;
  health?: () => { ok: boolean; detail?: string };
  close?: () => Promise<void>;
}

/** What prepare() started for a message: its text and the intent model's answer. */
interface PreparedTurn {
  text: string;
  prediction: Promise<IntentPrediction> | undefined;
}

interface Turn {
  message: UnifiedMessage;
  /** The text as the customer wrote it: what templates show. */
  text: string;
  /**
   * The same text NFKC-normalised, which every stage reads (entities, rules, hand-off phrases, KB, intent): full-width
   * "ＳＯ１２３４５６７８" or "ＲＥＦＵＮＤ" is then what its ASCII form is.
   */
  normalized: string;
  ctx: ConversationContext;
  prediction: IntentPrediction | undefined;
  intentTrace: DecisionTrace['intent'];
  notes: string[];
  started: number;
  awaiting: string;
}

/** The text a message offers to the bot: typed text or a platform voice transcript. */
export function textOf(content: Content): string {
  if (content.type === 'text') return content.text;
  if (content.type === 'audio') return content.transcript ?? '';
  if (content.type === 'image') return content.caption ?? '';
  return '';
}

const normalizeText = (text: string): string => text.normalize('NFKC');

const pickReply = (reply: string | string[]): string[] => (Array.isArray(reply) ? reply : [reply]);

export class PolicyBot implements Bot {
  private readonly handoffPhrases: SensitiveWords;

  constructor(private readonly deps: PolicyDeps) {
    // The same whole-word-aware automaton finds hand-off phrases ("agent" but not "agency").
    this.handoffPhrases = new SensitiveWords(deps.config.policy.handoffPhrases);
  }

  health(): { ok: boolean; detail?: string } {
    return this.deps.health?.() ?? { ok: true };
  }

  async close(): Promise<void> {
    await this.deps.close?.();
  }

  /**
   * The message's intent. The pipeline prepares all the messages of a queue job in the same turn of the event loop,
   * so their predictions share one model run (bot/intent/run-batcher.ts); asked for later, from decide(), they
   * arrived a few at a time.
   */
  prepare(message: UnifiedMessage): Promise<PreparedTurn> {
    const text = textOf(message.content).trim();
    const prediction = this.predict(normalizeText(text));
    prediction?.catch(() => undefined); // surfaced by decide() when it runs; dropped with the turn otherwise
    return Promise.resolve({ text, prediction });
  }

  /** The intent model's answer for a text; undefined for an empty text or when no model is loaded. */
  private predict(text: string): Promise<IntentPrediction> | undefined {
    const classifier = text ? this.deps.classifier?.() : undefined;
    if (!classifier) return undefined;
    try {
      return classifier.predict(text);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * The prediction, or none when the model failed on this text: the turn goes on without an intent (rules, hand-off
   * phrases and the KB still answer) rather than leaving the customer without a reply.
   */
  private async predictionOrNone(pending: Promise<IntentPrediction> | undefined, notes: string[]): Promise<IntentPrediction | undefined> {
    try {
      return await pending;
    } catch (err) {
      this.deps.log.error({ err }, 'intent prediction failed; the turn goes on without an intent');
      notes.push(`intent model failed: ${(err as Error).message}`);
      return undefined;
    }
  }

  async decide({ message, state, prepared }: BotInput): Promise<BotDecision> {
    const started = performance.now();
    const { entities } = this.deps;
    // `prepared` is what prepare() above returned for this message.
    const early = await ((prepared as Promise<PreparedTurn> | undefined) ?? this.prepare(message));
    const ctx = decodeContext(state, this.deps.config.context.ttlSeconds);
    let text = early.text;

    const burst = await this.burst(message, ctx, text);
    if (burst === 'deferred') {
      return {
        replies: [],
        trace: { stage: 'burst', reason: 'answered together with the next message of the burst', durationMs: performance.now() - started },
        state: encodeContext(ctx),
      };
    }
    text = burst;

    const normalized = normalizeText(text);
    const captured = entities.extract(normalized);
    Object.assign(ctx.slots, captured);
    const notes: string[] = [];
    if (Object.keys(captured).length) notes.push(`captured ${Object.keys(captured).join(', ')}`);
    // Rules see what the bot was waiting for during this turn; once it arrived, the wait is over.
    const awaiting = ctx.awaiting ?? '';
    if (ctx.awaiting && captured[ctx.awaiting] !== undefined) delete ctx.awaiting;
    if (message.content.type !== 'event') ctx.turns += 1;

    // A burst joins earlier texts to this one: that text is new to the model, so only it is predicted here.
    const prediction = await this.predictionOrNone(text === early.text ? early.prediction : this.predict(normalized), notes);
    const turn: Turn = {
      message,
      text,
      normalized,
      ctx,
      prediction,
      intentTrace: prediction && {
        label: prediction.label,
        confidence: prediction.confidence,
        top: prediction.top.slice(0, 3),
        modelVersion: prediction.modelVersion,
      },
      notes,
      started,
      awaiting,
    };

    const decision = await this.decideTurn(turn);
    ctx.lastStage = decision.trace.stage;
    return { ...decision, state: encodeContext(ctx) };
  }

  private async decideTurn(turn: Turn): Promise<BotDecision> {
    const { config } = this.deps;
    const { message, text, normalized, ctx, prediction } = turn;

    // 1. Sensitive words: always flagged for downstream systems; optionally answered or handed off right here.
    const hits = this.deps.sensitive.find(text).map((h) => h.word);
    if (hits.length) {
      this.deps.onSensitive?.(message, hits);
      turn.notes.push(`sensitive: ${hits.join(', ')}`);
      if (config.sensitive.inbound === 'reply') return this.finish(turn, 'sensitive', [config.sensitive.reply]);
      if (config.sensitive.inbound === 'handoff') {
        return this.finish(turn, 'sensitive', [config.policy.handoffReply], {
          handoff: { reason: 'sensitive words', priority: 'high', ...(config.sensitive.team && { team: config.sensitive.team }) },
        });
      }
    }

    // 2. Rules.
    const applied = await this.deps.rules.evaluate({
      channel: message.channel,
      text: normalized.toLowerCase(),
      rawText: text,
      intent: { label: prediction?.label ?? '', confidence: prediction?.confidence ?? 0 },
      slots: ctx.slots,
      attributes: { ...message.metadata, ...ctx.attributes },
      tags: ctx.tags,
      awaiting: turn.awaiting,
      turns: ctx.turns,
      unanswered: ctx.unanswered,
      now: Date.now(),
    });
    const ruled = this.applyRules(turn, applied);
    if (ruled) return ruled;
    // Not a customer turn: neither answered nor unanswered, so the unanswered count stays as it was.
    if (message.content.type === 'event') return this.finish(turn, 'ignored', [], { reason: 'event without a matching rule' }, false);

    // 3. Explicit hand-off request: a phrase, or an intent label that means "a human please".
    const phrase = this.handoffPhrases.find(normalized)[0]?.word;
    const wantsHuman =
      phrase ??
      (prediction && !prediction.outOfScope && config.intent.handoffLabels.includes(prediction.label) && prediction.confidence >= prediction.thresholds.confidence
        ? `intent ${prediction.label}`
        : undefined);
    if (wantsHuman) {
      return this.finish(turn, 'handoff', [config.policy.handoffReply], {
        handoff: { reason: `customer asked for a human (${wantsHuman})`, priority: 'normal', ...(config.policy.handoffTeam && { team: config.policy.handoffTeam }) },
      });
    }

    // 4. Knowledge base.
    if (this.deps.kb && normalized) {
      const match = this.deps.kb.search(normalized, message.channel);
      if (match && match.score >= config.kb.threshold) {
        turn.notes.push(`kb top: ${match.top.map((t) => `${t.id}=${t.score.toFixed(3)}`).join(', ')}`);
        return this.finish(turn, 'kb', [match.answer], { faqId: match.entry.id, score: match.score });
      }
      if (match) turn.notes.push(`kb best ${match.entry.id}=${match.score.toFixed(3)} below ${config.kb.threshold}`);
    }

    // 5./6. Intent model: answer when confident and clear; ask when the top two are too close to call.
    if (prediction && !prediction.outOfScope) {
      const [first, second] = prediction.top;
      const margin = first && second ? first.score - second.score : 1;
      const { confidence, ambiguityMargin } = prediction.thresholds;
      const template = config.intent.replies[prediction.label];
      if (margin >= ambiguityMargin && prediction.confidence >= confidence && template) {
        return this.finish(turn, 'intent', pickReply(template), { score: prediction.confidence });
      }
      if (margin < ambiguityMargin && first && second) {
        const name = (label: string) => config.intent.names[label] ?? label.replace(/[_-]+/g, ' ');
        const question = this.render(config.intent.clarify, turn, { option1: name(first.label), option2: name(second.label) });
        return this.unanswered(turn, 'clarify', question, `top-1 − top-2 = ${margin.toFixed(3)} < ${ambiguityMargin}`);
      }
    }

    // 7. Fallback.
    return this.unanswered(turn, 'fallback', config.fallback === undefined ? undefined : this.render(config.fallback, turn));
  }

  /** Applies matched rules' actions in order; answers when any of them replied, asked or handed off. */
  private applyRules(turn: Turn, applied: BotRule[]): BotDecision | undefined {
    if (applied.length === 0) return undefined;
    const { ctx } = turn;
    const replies: string[] = [];
    let handoff: HandoffRequest | undefined;
    for (const rule of applied) {
      if (rule.set?.attributes) Object.assign(ctx.attributes, rule.set.attributes);
      if (rule.set?.tags) ctx.tags = [...new Set([...ctx.tags, ...rule.set.tags])];
      if (rule.ask && ctx.slots[rule.ask.entity] === undefined) {
        ctx.awaiting = rule.ask.entity;
        replies.push(this.render(rule.ask.prompt, turn));
      } else if (rule.reply) {
        replies.push(...pickReply(rule.reply).map((r) => this.render(r, turn)));
      }
      if (rule.handoff && !handoff) handoff = { reason: `rule ${rule.id}`, priority: rule.handoff.priority, ...(rule.handoff.team && { team: rule.handoff.team }) };
    }
    const ids = applied.map((r) => r.id).join(',');
    if (replies.length === 0 && !handoff) {
      turn.notes.push(`rules ${ids} set context only`);
      return undefined;
    }
    return this.finish(turn, 'rule', replies, { ruleId: ids, ...(handoff && { handoff }) }, true);
  }

  private unanswered(turn: Turn, stage: string, reply: string | undefined, reason?: string): BotDecision {
    const { policy } = this.deps.config;
    turn.ctx.unanswered += 1;
    if (reason) turn.notes.push(reason);
    if (policy.handoffAfterUnanswered > 0 && turn.ctx.unanswered >= policy.handoffAfterUnanswered) {
      const count = turn.ctx.unanswered;
      return this.finish(turn, 'handoff', [policy.handoffReply], {
        handoff: { reason: `${count} unanswered turns`, priority: 'normal', ...(policy.handoffTeam && { team: policy.handoffTeam }) },
        reason: `after ${stage}: ${count} unanswered turns in a row`,
      });
    }
    return this.finish(turn, stage, reply === undefined ? [] : [reply], {}, false);
  }

  private finish(
    turn: Turn,
    stage: string,
    replies: string[],
    extra: { handoff?: HandoffRequest; ruleId?: string; faqId?: string; score?: number; reason?: string } = {},
    answered = true,
  ): BotDecision {
    if (answered || extra.handoff) turn.ctx.unanswered = 0;
    if (extra.handoff) delete turn.ctx.awaiting;
    const reason = [extra.reason, ...turn.notes].filter(Boolean).join('; ');
    const trace: DecisionTrace = {
      stage,
      ...(extra.ruleId && { ruleId: extra.ruleId }),
      ...(extra.faqId && { faqId: extra.faqId }),
      ...(extra.score !== undefined && { score: extra.score }),
      ...(turn.intentTrace && { intent: turn.intentTrace }),
      ...(reason && { reason }),
      durationMs: performance.now() - turn.started,
    };
    return {
      replies: replies.filter((r) => r.trim()).map((text) => ({ type: 'text', text })),
      ...(extra.handoff && { handoff: extra.handoff }),
      trace,
    };
  }

  private render(template: string, turn: Turn, more: Record<string, unknown> = {}): string {
    return renderTemplate(template, {
      text: turn.text,
      channel: turn.message.channel,
      intent: turn.prediction?.label ?? '',
      slots: turn.ctx.slots,
      attributes: { ...turn.message.metadata, ...turn.ctx.attributes },
      sender: { id: turn.message.sender.id, name: turn.message.sender.name ?? '' },
      ...more,
    });
  }

  /**
   * Burst handling for channels with a window: a message followed within the window by another one from the same
   * customer is not answered on its own; its text is kept and the last message of the burst is answered with all
   * of them. Returns the text to answer, or 'deferred'.
   */
  private async burst(message: UnifiedMessage, ctx: ConversationContext, text: string): Promise<string | 'deferred'> {
    const window = this.deps.config.policy.burstWindowMs[message.channel];
    if (!window || !this.deps.pendingInbound || message.content.type === 'event') return this.joinBurst(ctx, text);
    // Give a message the customer is typing right now the rest of the window to reach the queue.
    const wait = message.receivedAt + window - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const pending = await this.deps.pendingInbound(message.conversationId);
    const next = pending.filter((m) => m.id !== message.id && m.receivedAt >= message.receivedAt).sort((a, b) => a.receivedAt - b.receivedAt)[0];
    if (next && next.receivedAt - message.receivedAt <= window) {
      if (text) ctx.pendingBurst = [...(ctx.pendingBurst ?? []), text];
      return 'deferred';
    }
    return this.joinBurst(ctx, text);
  }

  private joinBurst(ctx: ConversationContext, text: string): string {
    if (!ctx.pendingBurst?.length) return text;
    const joined = [...ctx.pendingBurst, text].filter(Boolean).join('\n');
    delete ctx.pendingBurst;
    return joined;
  }
}
