/**
 * The rule engine: declarative rules (config.ts `BotRule`) compiled into json-rules-engine rules over a fixed set
 * of facts about the message and its conversation. json-rules-engine evaluates the conditions (its built-in
 * operators plus the few below); priorities and stop-on-match are applied here on the results, so one engine can
 * serve concurrent conversations (its own `stop()` is engine-wide).
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

function addOperators(engine: Engine): void {
  engine.addOperator<string, string[]>('containsAnyKeyword', (text, keywords) => keywords.some((k) => text.includes(k)));
  engine.addOperator<string, string>('matchesRegex', (text, source) => regexFor(source).test(text));
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
  if (when.keywords) all.push({ fact: 'text', operator: 'containsAnyKeyword', value: when.keywords.map((k) => k.normalize('NFKC').toLowerCase()) });
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

export class RuleEngine {
  private readonly engine: Engine;
  private readonly byName = new Map<string, { rule: BotRule; order: number }>();

  constructor(rules: readonly BotRule[]) {
    this.engine = new Engine([], { allowUndefinedFacts: true });
    addOperators(this.engine);
    // json-rules-engine wants priorities ≥ 1 (higher first): rank the distinct configured priorities.
    const ranks = [...new Set(rules.map((r) => r.priority))].sort((a, b) => a - b);
    rules.forEach((rule, order) => {
      if (!rule.enabled) return;
      const name = `${order}:${rule.id}`;
      this.byName.set(name, { rule, order });
      this.engine.addRule({
        name,
        priority: ranks.indexOf(rule.priority) + 1,
        conditions: compileConditions(rule.match),
        event: { type: 'rule', params: { id: rule.id } },
      });
    });
  }

  get size(): number {
    return this.byName.size;
  }

  /** The rules that apply, in order: highest priority first, list order within a priority, up to the first stop. */
  async evaluate(facts: RuleFacts): Promise<BotRule[]> {
    if (this.byName.size === 0) return [];
    const { results } = await this.engine.run({ ...facts });
    const matched = results
      .map((r) => this.byName.get(r.name)!)
      .filter(Boolean)
      .sort((a, b) => b.rule.priority - a.rule.priority || a.order - b.order);
    const applied: BotRule[] = [];
    for (const { rule } of matched) {
      applied.push(rule);
      if (rule.stop) break;
    }
    return applied;
  }
}
