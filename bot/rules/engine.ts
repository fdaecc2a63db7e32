/**
 * The rule engine: declarative rules (config.ts `BotRule`) over a fixed set of facts about the message and its
 * conversation. Priorities and stop-on-match are applied here on the results.
 *
 * A rule's declarative conditions (channel, keywords, regex, intent, entities, attributes, tags, awaiting, turn
 * counters, business hours) are compiled into a plain predicate. Only a rule with an advanced `conditions` tree gets a
 * json-rules-engine engine (its operators plus the few below), which decides once the predicate holds, and one engine
 * per rule lets concurrent conversations share it (json-rules-engine's own `stop()` is engine-wide). An engine run
 * deep-clones the rule's conditions and hashes every fact; when the shipped rules went through json-rules-engine, a
 * message that contained a keyword (any text with "order" in it) paid for a run that its entity condition then
 * failed — json-rules-engine, hash-it and clone were ≈ 14 % of what a worker allocated (bench/README.md).
 * `compileConditions` gives the same conditions as json-rules-engine sees them; test/bot/rules.test.ts checks that
 * the predicate and the engine agree on every kind of condition.
 *
 * Facts: channel, text (NFKC-normalised, lower-cased), rawText (as written), intent {label, confidence}, slots,
 * attributes, tags, awaiting, turns, unanswered, now (ms since the epoch).
 */
import { Engine, type NestedCondition, type TopLevelCondition } from 'json-rules-engine';
import type { Logger } from '../../gateway/logger.js';
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

/** Every fact, for the config schema to check the names an advanced condition tree uses. */
const FACT_NAMES: Record<keyof RuleFacts, true> = {
  channel: true,
  text: true,
  rawText: true,
  intent: true,
  slots: true,
  attributes: true,
  tags: true,
  awaiting: true,
  turns: true,
  unanswered: true,
  now: true,
};
export const RULE_FACTS = Object.keys(FACT_NAMES) as [keyof RuleFacts, ...(keyof RuleFacts)[]];

const regexCache = new Map<string, RegExp>();
function regexFor(source: string): RegExp {
  let re = regexCache.get(source);
  if (!re) regexCache.set(source, (re = new RegExp(source, 'iu')));
  return re;
}

const containsAnyKeyword = (text: string, keywords: string[]): boolean => keywords.some((k) => text.includes(k));
const matchesRegex = (text: string, source: string): boolean => regexFor(source).test(text);
const normalizeKeywords = (keywords: string[]): string[] => keywords.map((k) => k.normalize('NFKC').toLowerCase());
const hasKeys = (obj: Record<string, unknown>, keys: string[]): boolean => keys.every((k) => obj?.[k] !== undefined);
const lacksKeys = (obj: Record<string, unknown>, keys: string[]): boolean => keys.every((k) => obj?.[k] === undefined);
const attributeIn = (attrs: Record<string, Scalar>, { key, values }: { key: string; values: Scalar[] }): boolean =>
  values.some((v) => attrs?.[key] !== undefined && String(attrs[key]) === String(v));
const includesAll = (list: string[], wanted: string[]): boolean => wanted.every((w) => list.includes(w));
const includesNone = (list: string[], unwanted: string[]): boolean => unwanted.every((w) => !list.includes(w));
const inBusinessHours = (now: number, hours: BusinessHours): boolean => withinBusinessHours(now, hours) === hours.inside;

/** The project's own operators (json-rules-engine has `in`, `equal` and the inclusive bounds built in). */
const CUSTOM_OPERATORS = {
  containsAnyKeyword,
  matchesRegex,
  hasKeys,
  lacksKeys,
  attributeIn,
  includesAll,
  includesNone,
  inBusinessHours,
} as Record<string, (factValue: never, value: never) => boolean>;

/** Every operator a declarative condition uses, as json-rules-engine reads its built-in ones. */
const OPERATORS: Record<string, (factValue: never, value: never) => boolean> = {
  ...CUSTOM_OPERATORS,
  in: (factValue: unknown, values: unknown[]) => values.includes(factValue),
  equal: (factValue: unknown, value: unknown) => factValue === value,
  greaterThanInclusive: (factValue: number, value: number) => factValue >= value,
  lessThanInclusive: (factValue: number, value: number) => factValue <= value,
};

/** The operators compileConditions() uses, on a json-rules-engine engine. */
export function addRuleOperators(engine: Engine): void {
  for (const [name, operator] of Object.entries(CUSTOM_OPERATORS)) engine.addOperator(name, operator);
}

/** The operator table json-rules-engine consults at run time (not in its type declarations). */
interface OperatorLookup {
  operators: { get(name: string): unknown };
}

/** An engine that only answers which operators exist: the built-in ones, decorated ones (`not:equal`) and ours. */
const operatorCatalogue = newRuleEngine() as unknown as OperatorLookup;

/** Whether a rule engine knows this operator, looked up as json-rules-engine looks it up when a rule runs. */
export function isKnownOperator(name: string): boolean {
  return operatorCatalogue.operators.get(name) != null;
}

/** Why json-rules-engine would refuse these conditions, or undefined when it builds a rule from them. */
export function conditionsProblem(when: RuleConditions): string | undefined {
  try {
    newRuleEngine().addRule({ conditions: compileConditions(when), event: { type: 'check' } });
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

function newRuleEngine(): Engine {
  const engine = new Engine([], { allowUndefinedFacts: true });
  addRuleOperators(engine);
  return engine;
}

/** One declarative condition: a fact (a field of it with `path`), an operator and the value it is compared with. */
interface FactCondition {
  fact: keyof RuleFacts;
  path?: `$.${string}`;
  operator: string;
  value: unknown;
}

/** A rule's declarative conditions (all but the advanced tree), cheapest first. */
function declarativeConditions(when: RuleConditions): FactCondition[] {
  const all: FactCondition[] = [];
  if (when.channels) all.push({ fact: 'channel', operator: 'in', value: when.channels });
  if (when.keywords) all.push({ fact: 'text', operator: 'containsAnyKeyword', value: normalizeKeywords(when.keywords) });
  // On the normalised text (the flags ignore case anyway), so full-width "ＲＥＦＵＮＤ" meets /refund/ as keywords do.
  if (when.regex !== undefined) all.push({ fact: 'text', operator: 'matchesRegex', value: when.regex });
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
  return all;
}

/** All the conditions of one rule, the advanced tree included, as a json-rules-engine `all` condition. */
export function compileConditions(when: RuleConditions): TopLevelCondition {
  const all = declarativeConditions(when) as NestedCondition[];
  if (when.conditions) all.push(when.conditions as unknown as TopLevelCondition);
  return { all };
}

/**
 * A rule's declarative conditions as a predicate: the same conditions compileConditions() hands json-rules-engine,
 * evaluated here with the same operators.
 */
export function declarativeMatch(when: RuleConditions): (facts: RuleFacts) => boolean {
  const checks = declarativeConditions(when).map(({ fact, path, operator, value }): ((facts: RuleFacts) => boolean) => {
    const holds = OPERATORS[operator]!;
    const field = path?.slice(2);
    return (facts) => {
      const factValue = field === undefined ? facts[fact] : (facts[fact] as Record<string, unknown>)[field];
      return holds(factValue as never, value as never);
    };
  });
  return (facts) => checks.every((check) => check(facts));
}

interface CompiledRule {
  rule: BotRule;
  order: number;
  /** The declarative conditions hold. */
  matches: (facts: RuleFacts) => boolean;
  /** Only for a rule with an advanced `conditions` tree: decides after `matches`. */
  engine?: Engine;
}

export class RuleEngine {
  private readonly compiled: CompiledRule[] = [];

  /**
   * The schema refuses conditions json-rules-engine cannot build or run; should one still fail (a rule stored before
   * that check, a case it misses), only that rule is lost — logged and treated as not matching — never the whole
   * rule set or the customer's turn.
   */
  constructor(
    rules: readonly BotRule[],
    private readonly log: Pick<Logger, 'error'>,
  ) {
    rules.forEach((rule, order) => {
      if (!rule.enabled) return;
      try {
        this.compiled.push({ rule, order, matches: declarativeMatch(rule.match), ...(rule.match.conditions && { engine: engineFor(rule, order) }) });
      } catch (err) {
        this.log.error({ ruleId: rule.id, err }, 'rule left out: its conditions cannot be built');
      }
    });
  }

  get size(): number {
    return this.compiled.length;
  }

  /** The rules whose declarative conditions the message meets: those without an advanced tree apply, the rest may. */
  candidates(facts: RuleFacts): BotRule[] {
    return this.compiled.filter((c) => c.matches(facts)).map((c) => c.rule);
  }

  /** The rules that apply, in order: highest priority first, list order within a priority, up to the first stop. */
  async evaluate(facts: RuleFacts): Promise<BotRule[]> {
    const candidates = this.compiled.filter((c) => c.matches(facts));
    if (candidates.length === 0) return [];
    const matched = (await Promise.all(candidates.map(async (c) => ((await this.advancedTreeHolds(c, facts)) ? [c] : []))))
      .flat()
      .sort((a, b) => b.rule.priority - a.rule.priority || a.order - b.order);
    const applied: BotRule[] = [];
    for (const { rule } of matched) {
      applied.push(rule);
      if (rule.stop) break;
    }
    return applied;
  }

  private async advancedTreeHolds(c: CompiledRule, facts: RuleFacts): Promise<boolean> {
    if (!c.engine) return true;
    try {
      return (await c.engine.run({ ...facts })).results.length > 0;
    } catch (err) {
      this.log.error({ ruleId: c.rule.id, err }, 'rule failed; treated as not matching');
      return false;
    }
  }
}

/** A json-rules-engine engine holding one rule: all its conditions, the advanced tree among them. */
function engineFor(rule: BotRule, order: number): Engine {
  const engine = newRuleEngine();
  engine.addRule({ name: `${order}:${rule.id}`, conditions: compileConditions(rule.match), event: { type: 'rule', params: { id: rule.id } } });
  return engine;
}
