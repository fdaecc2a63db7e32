/**
 * Expressions of config-defined channels, in JSONata (jsonata-js): it builds objects and strings, has
 * conditionals and functions ($string, $exists, $number...), is maintained, dependency-free and ships its own types
 * — where JMESPath can select but not build a request body or concatenate a signature base string.
 *
 * Two forms appear in config:
 * - an expression: `event.text`, `{"chat_id": reference.threadId, "text": text}`;
 * - a template: plain text with `{{ expression }}` holes, `{{ apiBaseUrl }}/api/chat.postMessage`.
 * Both are compiled when the config is validated, so a typo stops start-up with the field and position named.
 */
import jsonata from 'jsonata';

export type Bindings = Record<string, unknown>;

export interface CompiledExpression {
  source: string;
  evaluate(input: unknown, bindings?: Bindings): Promise<unknown>;
}

/** A compile error worded for a config file: where in the expression, and what JSONata said. */
export function describeCompileError(source: string, err: unknown): string {
  const e = err as { message?: string; position?: number; token?: string };
  const where = typeof e.position === 'number' ? ` at position ${e.position}` : '';
  const near = typeof e.position === 'number' ? ` near "${source.slice(Math.max(0, e.position - 12), e.position + 8)}"` : '';
  return `invalid JSONata expression${where}${near}: ${e.message ?? String(err)}`;
}

export function compileExpression(source: string): CompiledExpression {
  const expression = jsonata(source);
  return {
    source,
    evaluate: async (input, bindings) => normalise(await expression.evaluate(input, bindings)),
  };
}

/**
 * An expression that compiled but failed on a given input (e.g. `$number("12x")`, a function applied to the wrong
 * type). It names the config field, so a log line or a 422 points at what to fix.
 */
export class ExpressionFailed extends Error {
  /** What failed and why, without the field: `message.date * 1000 failed: The left side of ...`. */
  readonly detail: string;
  constructor(
    readonly field: string,
    readonly source: string,
    cause: unknown,
  ) {
    const detail = `${source} failed: ${(cause as { message?: string })?.message ?? String(cause)}`;
    super(`${field}: ${detail}`);
    this.name = 'ExpressionFailed';
    this.detail = detail;
  }
}

/** Evaluates `expression` (when there is one); an error thrown by JSONata becomes an ExpressionFailed naming `field`. */
export async function evaluateField(field: string, expression: CompiledExpression | undefined, input: unknown, bindings?: Bindings): Promise<unknown> {
  if (!expression) return undefined;
  try {
    return await expression.evaluate(input, bindings);
  } catch (err) {
    throw new ExpressionFailed(field, expression.source, err);
  }
}

/** JSONata returns multi-valued paths as "sequences" (arrays with extra flags); plain JSON values are simpler downstream. */
function normalise(value: unknown): unknown {
  if (value === undefined || value === null || typeof value !== 'object') return value;
  return JSON.parse(JSON.stringify(value));
}

const HOLE = /\{\{([\s\S]*?)\}\}/g;

export interface CompiledTemplate {
  source: string;
  render(input: unknown, bindings?: Bindings): Promise<string>;
}

/** Splits a `{{ }}` template into literal text and compiled holes; throws naming the hole that does not compile. */
export function compileTemplate(source: string): CompiledTemplate {
  const parts: Array<string | CompiledExpression> = [];
  let last = 0;
  for (const match of source.matchAll(HOLE)) {
    parts.push(source.slice(last, match.index));
    const inner = match[1]!.trim();
    if (!inner) throw new Error(`empty {{ }} at offset ${match.index}`);
    try {
      parts.push(compileExpression(inner));
    } catch (err) {
      throw new Error(`in {{ ${inner} }}: ${describeCompileError(inner, err)}`);
    }
    last = match.index + match[0].length;
  }
  parts.push(source.slice(last));
  return {
    source,
    async render(input, bindings) {
      let out = '';
      for (const part of parts) {
        if (typeof part === 'string') out += part;
        else {
          const value = await part.evaluate(input, bindings);
          out += value === undefined || value === null ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
        }
      }
      return out;
    },
  };
}

/** Compiles or returns the error text; used by the zod schema to report the exact field. */
export function checkExpression(source: string): string | undefined {
  try {
    compileExpression(source);
    return undefined;
  } catch (err) {
    return describeCompileError(source, err);
  }
}

export function checkTemplate(source: string): string | undefined {
  try {
    compileTemplate(source);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** An id-like result (string or number) as a string; anything else is undefined. */
export function asId(value: unknown): string | undefined {
  if (typeof value === 'string') return value.length > 0 ? value : undefined;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}
