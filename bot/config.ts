/** The `bot:` section of the config: intent model, KB, rules, sensitive words, entities, context and policy. */
import { z } from 'zod';
import { conditionsProblem, isKnownOperator, RULE_FACTS } from './rules/engine.js';

const regexSource = (flags: string) =>
  z.string().refine((r) => isValidRegex(r, flags), { message: 'not a valid JavaScript regular expression' });

const Scalar = z.union([z.string(), z.number(), z.boolean()]);
const Range = z.object({ min: z.number().optional(), max: z.number().optional() });

export const BusinessHours = z.object({
  timeZone: z
    .string()
    .refine(isTimeZone, { message: 'not an IANA time zone (e.g. Asia/Shanghai)' })
    .default('UTC'),
  days: z.array(z.number().int().min(1).max(7)).default([1, 2, 3, 4, 5]).describe('ISO weekdays, 1 = Monday'),
  from: z.string().regex(/^\d{2}:\d{2}$/).default('09:00'),
  to: z.string().regex(/^\d{2}:\d{2}$/).default('18:00'),
  inside: z.boolean().default(true).describe('true: match during business hours; false: match outside them'),
});
export type BusinessHours = z.infer<typeof BusinessHours>;

/** A node of an advanced condition tree, as json-rules-engine reads it. */
export type ConditionNode =
  | { all: ConditionNode[]; priority?: number; name?: string }
  | { any: ConditionNode[]; priority?: number; name?: string }
  | { not: ConditionNode; priority?: number; name?: string }
  | { fact: string; operator: string; value: unknown; path?: string; params?: Record<string, unknown>; priority?: number; name?: string };

const nodeOptions = { priority: z.number().int().positive().optional(), name: z.string().optional() };
const AllNode = z.strictObject({ all: z.array(z.lazy(() => ConditionNode)), ...nodeOptions });
const AnyNode = z.strictObject({ any: z.array(z.lazy(() => ConditionNode)), ...nodeOptions });
const NotNode = z.strictObject({ not: z.lazy(() => ConditionNode), ...nodeOptions });
const FactNode = z.strictObject({
  fact: z.enum(RULE_FACTS, { error: (issue) => `unknown fact ${JSON.stringify(issue.input)}; the facts are ${RULE_FACTS.join(', ')}` }),
  operator: z.string().refine(isKnownOperator, {
    error: (issue) => `unknown operator ${JSON.stringify(issue.input)}: not a json-rules-engine operator (equal, in, contains, lessThan, …, with decorators such as not:equal) nor one of the bot's`,
  }),
  value: z.unknown().nonoptional('required: the value the fact is compared with'),
  path: z.string().startsWith('$', { error: 'a JSONPath into the fact, starting with $' }).optional(),
  params: z.record(z.string(), z.unknown()).optional(),
  ...nodeOptions,
});

/**
 * The node's kind is read off its key, and only that kind is checked: a problem is then reported where it is
 * (`conditions.all.1.operator: unknown operator …`) instead of as the union's bare "Invalid input". A check, not a
 * transform: the tree is kept as written, and the defaults around it stay in the generated docs.
 */
const ConditionNode = z.custom<ConditionNode>().superRefine((input, ctx) => {
  const schema = conditionNodeSchema(input);
  if (!schema) {
    ctx.addIssue({ code: 'custom', message: 'a condition is {all: [...]}, {any: [...]}, {not: {...}} or {fact, operator, value}', continue: false });
    return;
  }
  const result = schema.safeParse(input);
  // `continue: false`: the rule-level check below builds the tree only when it passed this one.
  for (const issue of result.error?.issues ?? []) ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path, continue: false });
});

function conditionNodeSchema(input: unknown): z.ZodType | undefined {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) return undefined;
  if ('all' in input) return AllNode;
  if ('any' in input) return AnyNode;
  if ('not' in input) return NotNode;
  return 'fact' in input ? FactNode : undefined;
}

export const RuleConditions = z
  .object({
    channels: z.array(z.string()).optional().describe('Only on these channel ids'),
    keywords: z.array(z.string().min(1)).optional().describe('The text contains any of these (case-insensitive, NFKC-normalised)'),
    regex: regexSource('iu').optional().describe('This regular expression (flags "iu") finds a match in the text (NFKC-normalised)'),
    intent: z
      .object({
        labels: z.array(z.string()).optional(),
        minConfidence: z.number().min(0).max(1).optional(),
        maxConfidence: z.number().min(0).max(1).optional(),
      })
      .optional()
      .describe('The intent model predicted one of these labels with this confidence'),
    entities: z
      .object({ has: z.array(z.string()).optional(), missing: z.array(z.string()).optional() })
      .optional()
      .describe('Conversation slots present / absent (captured this turn or earlier)'),
    attributes: z
      .record(z.string(), z.union([Scalar, z.array(Scalar)]))
      .optional()
      .describe('Customer attributes (message metadata + attributes set by rules) equal to a value or one of a list'),
    tags: z.object({ has: z.array(z.string()).optional(), missing: z.array(z.string()).optional() }).optional(),
    awaiting: z.string().optional().describe('The bot is waiting for this entity'),
    turns: Range.optional().describe('Customer turns in this conversation, this one included'),
    unanswered: Range.optional().describe('Consecutive unanswered turns before this one'),
    businessHours: BusinessHours.optional(),
    conditions: ConditionNode.optional().describe(
      'Advanced: a json-rules-engine condition tree over the same facts: {all: [...]}, {any: [...]}, {not: {...}} or {fact, operator, value, path?}',
    ),
  })
  .superRefine((when, ctx) => {
    // What the schema above does not see (json-rules-engine's own rules for a tree) is found by building the rule.
    const problem = when.conditions && conditionsProblem(when);
    if (problem) ctx.addIssue({ code: 'custom', message: `json-rules-engine refuses this tree: ${problem}`, path: ['conditions'] });
  })
  .prefault({});
export type RuleConditions = z.infer<typeof RuleConditions>;

const Reply = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

export const HandoffAction = z.object({
  team: z.string().optional().describe('Queue/team name for the helpdesk'),
  priority: z.enum(['low', 'normal', 'high', 'urgent']).default('normal'),
});

export const BotRule = z
  .object({
    id: z.string().min(1),
    description: z.string().optional(),
    enabled: z.boolean().default(true),
    priority: z.number().int().min(-1000).max(1000).default(0).describe('Higher runs first; equal priorities keep list order'),
    stop: z.boolean().default(true).describe('Stop evaluating further rules when this one matches'),
    match: RuleConditions.describe('All given conditions must hold'),
    reply: Reply.optional().describe('Reply template(s): {{text}}, {{channel}}, {{intent}}, {{slots.x}}, {{attributes.x}}'),
    handoff: HandoffAction.optional().describe('Hand the conversation to a human'),
    set: z
      .object({ attributes: z.record(z.string(), Scalar).optional(), tags: z.array(z.string()).optional() })
      .optional()
      .describe('Remember customer attributes / tags in the conversation context'),
    ask: z
      .object({ entity: z.string(), prompt: z.string().min(1) })
      .optional()
      .describe('When this entity is missing, ask for it (instead of the reply) and wait for it'),
  })
  .refine((r) => r.reply || r.handoff || r.set || r.ask, { message: 'a rule needs at least one action: reply, handoff, set or ask' });
export type BotRule = z.infer<typeof BotRule>;
export type BotRuleInput = z.input<typeof BotRule>;

export const EntityPattern = z.object({
  name: z.string().regex(/^[A-Za-z][A-Za-z0-9_]*$/),
  regex: regexSource('gui').describe('The value is the named group "value", else group 1, else the whole match'),
  caseSensitive: z.boolean().default(false),
  normalize: z.enum(['none', 'upper', 'lower', 'digits']).default('none'),
});
export type EntityPattern = z.infer<typeof EntityPattern>;

export const DEFAULT_ENTITIES: z.input<typeof EntityPattern>[] = [
  { name: 'email', regex: '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}', normalize: 'lower' },
  { name: 'orderNumber', regex: '\\b(?:SO|ORD|DD)-?\\d{6,14}\\b', normalize: 'upper' },
  { name: 'phone', regex: '(?<![\\d+])(?:\\+?\\d{1,3}[ -]?)?(?:1[3-9]\\d{9}|\\d{3}[ -]\\d{3,4}[ -]\\d{4})(?!\\d)', normalize: 'digits' },
];

export const BotConfig = z
  .object({
    intent: z
      .object({
        enabled: z.boolean().default(false).describe('Load the intent model; start-up fails if it cannot be loaded'),
        model: z.string().default('models/support').describe('Model folder (model.onnx + model.json)'),
        replies: z.record(z.string(), Reply).default({}).describe('Reply template(s) per intent label'),
        names: z.record(z.string(), z.string()).default({}).describe('Human-readable intent names for clarifying questions'),
        handoffLabels: z.array(z.string()).default([]).describe('Labels that mean "get me a human"'),
        clarify: z
          .string()
          .default('Do you mean {{option1}} or {{option2}}?')
          .describe('Clarifying question when the top two intents are too close'),
      })
      .prefault({}),
    kb: z
      .object({
        seed: z.string().optional().describe('KB file (json/csv/md) imported on first start when the Redis KB was never written'),
        threshold: z.number().min(0).default(0.35).describe('Normalised BM25 score needed to answer from the KB'),
        k1: z.number().positive().default(1.2),
        b: z.number().min(0).max(1).default(0.75),
      })
      .prefault({}),
    rules: z.array(BotRule).default([]).describe('Rules from the config; more can be added through /admin/rules'),
    sensitive: z
      .object({
        words: z.array(z.string().min(1)).default([]),
        file: z.string().optional().describe('A word list file, one word per line (# comments)'),
        inbound: z.enum(['flag', 'reply', 'handoff']).default('flag').describe('flag: emit message.sensitive and go on'),
        reply: z.string().default('Please keep the conversation respectful. How can I help you?'),
        team: z.string().optional(),
        blockOutbound: z.enum(['all', 'bot', 'none']).default('all').describe('Which outbound messages are blocked when they contain a listed word'),
      })
      .prefault({}),
    entities: z.array(EntityPattern).default(DEFAULT_ENTITIES.map((e) => EntityPattern.parse(e))),
    context: z
      .object({
        ttlSeconds: z
          .number()
          .int()
          .positive()
          .default(7 * 24 * 3600)
          .describe('A conversation context (slots, attributes, tags, counters) older than this is forgotten: the next message starts afresh'),
      })
      .prefault({}),
    policy: z
      .object({
        handoffAfterUnanswered: z.number().int().min(0).default(3).describe('Hand off after K unanswered turns in a row (0: never)'),
        handoffPhrases: z.array(z.string().min(1)).default(['转人工', '人工客服', 'agent', 'human']),
        handoffTeam: z.string().optional(),
        handoffReply: z.string().default('I am connecting you with a colleague. Please hold on.'),
        burstWindowMs: z.record(z.string(), z.number().int().min(0).max(30_000)).default({}).describe('Per channel id: messages within this window are one turn'),
      })
      .prefault({}),
    fallback: z.string().optional().describe('Reply when nothing answered; absent means no reply'),
  })
  .prefault({});
export type BotConfig = z.infer<typeof BotConfig>;
export type BotConfigInput = z.input<typeof BotConfig>;

function isValidRegex(source: string, flags: string): boolean {
  try {
    new RegExp(source, flags);
    return true;
  } catch {
    return false;
  }
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
