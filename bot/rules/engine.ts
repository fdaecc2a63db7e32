/**
 * The rule engine: declarative rules (config.ts `BotRule`) compiled into json-rules-engine rules over a fixed set
 * of facts about the message and its conversation. json-rules-engine evaluates the conditions (its built-in
 * operators plus the few below); priorities and stop-on-match are applied here on the results, so one engine can
 * serve concurrent conversations (its own `stop()` is engine-wide).
 *
 * Each rule has its own engine behind a gate: the channel, keyword and regex conditions are conjuncts of the rule's
 * `all`, so a message failing one of them cannot match, and its engine is not run. json-rules-engine deep-clones
 * every rule's conditions on every run; with a few rules per message passing their gate instead of all of them,
 * most messages run none or one.
 *
 * Facts: channel, text (lower-cased), rawText, intent {label, confidence}, slots, attributes, tags, awaiting,
 * turns, unanswered, now (ms since the epoch).
 */
import { Engine, type NestedCondition, type TopLevelCondition } from 'json-rules-engine';
import type { BotRule, BusinessHours, RuleConditions } from '../config.js';
import type { Scalar } from '../context.js';
import { withinBusinessHours } from './business-hours.js';

export interface RuleFacts {
  channel: string;
  text: string;
  rawText: string;
  intent: { label: string; confidence: number };
  slots: Record<string, string>;
  attributes: Record<string, Scalar>;
  tags: string[];
  awaiting: string;
  turns: number;
  unanswered: number;
  now: number;
}

const regexCache = new Map<string, RegExp>();
function regexFor(source: string): RegExp {
  let re = regexCache.get(source);
  if (!re) regexCache.set(source, (re = new RegExp(source, 'iu')));
  return re;
}

const containsAnyKeyword = (text: string, keywords: string[]): boolean => keywords.some((k) => text.includes(k));
const matchesRegex = (text: string, source: string): boolean => regexFor(source).test(text);
const normalizeKeywords = (keywords: string[]): string[] => keywords.map((k) => k.normalize('NFKC').toLowerCase());

function addOperators(engine: Engine): void {
  engine.addOperator<string, string[]>('containsAnyKeyword', containsAnyKeyword);
  engine.addOperator<string, string>('matchesRegex', matchesRegex);
  engine.addOperator<Record<string, unknown>, string[]>('hasKeys', (obj, keys) => keys.every((k) => obj?.[k] !== undefined));
  engine.addOperator<Record<string, unknown>, string[]>('lacksKeys', (obj, keys) => keys.every((k) => obj?.[k] === undefined));
  engine.addOperator<Record<string, Scalar>, { key: string; values: Scalar[] }>('attributeIn', (attrs, { key, values }) =>
    values.some((v) => attrs?.[key] !== undefined && String(attrs[key]) === String(v)),
  );
  engine.addOperator<string[], string[]>('includesAll', (list, wanted) => wanted.every((w) => list.includes(w)));
  engine.addOperator<string[], string[]>('includesNone', (list, unwanted) => unwanted.every((w) => !list.includes(w)));
  engine.addOperator<number, BusinessHours>('inBusinessHours', (now, hours) => withinBusinessHours(now, hours) === hours.inside);
}

/** The declarative conditions of one rule as a json-rules-engine `all` condition. */
export function compileConditions(when: RuleConditions): TopLevelCondition {
  const all: NestedCondition[] = [];
  if (when.channels) all.push({ fact: 'channel', operator: 'in', value: when.channels });
  if (when.keywords) all.push({ fact: 'text', operator: 'containsAnyKeyword', value: normalizeKeywords(when.keywords) });
  if (when.regex !== undefined) all.push({ fact: 'rawText', operator: 'matchesRegex', value: when.regex });
  if (when.intent?.labels) all.push({ fact: 'intent', path: '$.label', operator: 'in', value: when.intent.labels });
  if (when.intent?.minConfidence !== undefined) {
    all.push({ fact: 'intent', path: '$.confidence', operator: 'greaterThanInclusive', value: when.intent.minConfidence });
  }
  if (when.intent?.maxConfidence !== undefined) {
    all.push({ fact: 'intent', path: '$.confidence', operator: 'lessThanInclusive', value: when.intent.maxConfidence });
  }
  if (when.entities?.has) all.push({ fact: 'slots', operator: 'hasKeys', value: when.entities.has });
  if (when.entities?.missing) all.push({ fact: 'slots', operator: 'lacksKeys', value: when.entities.missing });
  for (const [key, expected] of Object.entries(when.attributes ?? {})) {
    all.push({ fact: 'attributes', operator: 'attributeIn', value: { key, values: Array.isArray(expected) ? expected : [expected] } });
  }
  if (when.tags?.has) all.push({ fact: 'tags', operator: 'includesAll', value: when.tags.has });
  if (when.tags?.missing) all.push({ fact: 'tags', operator: 'includesNone', value: when.tags.missing });
  if (when.awaiting !== undefined) all.push({ fact: 'awaiting', operator: 'equal', value: when.awaiting });
  for (const fact of ['turns', 'unanswered'] as const) {
    const range = when[fact];
    if (range?.min !== undefined) all.push({ fact, operator: 'greaterThanInclusive', value: range.min });
    if (range?.max !== undefined) all.push({ fact, operator: 'lessThanInclusive', value: range.max });
  }
  if (when.businessHours) all.push({ fact: 'now', operator: 'inBusinessHours', value: when.businessHours });
  if (when.conditions) all.push(when.conditions as unknown as TopLevelCondition);
  return { all };
}

/** The conditions of a rule that are cheap to check outside the engine; failing one means the rule cannot match. */
function gateOf(when: RuleConditions): (facts: RuleFacts) => boolean {
  const channels = when.channels;
  const keywords = when.keywords && normalizeKeywords(when.keywords);
  const regex = when.regex;
  return (facts) =>
    (channels === undefined || channels.includes(facts.channel)) &&
    (keywords === undefined || containsAnyKeyword(facts.text, keywords)) &&
    (regex === undefined || matchesRegex(facts.rawText, regex));
}

interface CompiledRule {
  rule: BotRule;
  order: number;
  gate: (facts: RuleFacts) => boolean;
  engine: Engine;
}

export class RuleEngine {
  private readonly compiled: CompiledRule[] = [];

  constructor(rules: readonly BotRule[]) {
    rules.forEach((rule, order) => {
      if (!rule.enabled) return;
      const engine = new Engine([], { allowUndefinedFacts: true });
      addOperators(engine);
      engine.addRule({
        name: `${order}:${rule.id}`,
        conditions: compileConditions(rule.match),
        event: { type: 'rule', params: { id: rule.id } },
      });
      this.compiled.push({ rule, order, gate: gateOf(rule.match), engine });
    });
  }

  get size(): number {
    return this.compiled.length;
  }

  /** The rules whose gate the message passes: only these can match (their engines still decide). */
  candidates(facts: RuleFacts): BotRule[] {
    return this.compiled.filter((c) => c.gate(facts)).map((c) => c.rule);
  }

  /** The rules that apply, in order: highest priority first, list order within a priority, up to the first stop. */
  async evaluate(facts: RuleFacts): Promise<BotRule[]> {
    const candidates = this.compiled.filter((c) => c.gate(facts));
    if (candidates.length === 0) return [];
    const matched = (
      await Promise.all(candidates.map(async (c) => ((await c.engine.run({ ...facts })).results.length > 0 ? [c] : [])))
    )
      .flat()
      .sort((a, b) => b.rule.priority - a.rule.priority || a.order - b.order);
    const applied: BotRule[] = [];
    for (const { rule } of matched) {
      applied.push(rule);
      if (rule.stop) break;
    }
    return applied;
  }
}
