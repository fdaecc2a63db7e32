/** Ordered keyword/regex rules: the first rule that matches replies or hands off. */
import type { Bot, BotDecision, BotInput } from './types.js';
import type { BotConfig, BotRule } from './config.js';

interface CompiledRule {
  rule: BotRule;
  keywords: string[];
  regex: RegExp | undefined;
}

export class RuleBot implements Bot {
  private readonly rules: CompiledRule[];
  constructor(private readonly config: BotConfig) {
    this.rules = config.rules.map((rule) => ({
      rule,
      keywords: (rule.match.keywords ?? []).map((k) => k.toLowerCase()),
      regex: rule.match.regex === undefined ? undefined : new RegExp(rule.match.regex, 'iu'),
    }));
  }

  async decide({ message }: BotInput): Promise<BotDecision> {
    const started = performance.now();
    const text = message.content.type === 'text' ? message.content.text : '';
    const lower = text.toLowerCase();
    for (const { rule, keywords, regex } of this.rules) {
      if (rule.match.channels && !rule.match.channels.includes(message.channel)) continue;
      const hit = keywords.some((k) => lower.includes(k)) || (regex !== undefined && regex.test(text));
      if (!hit) continue;
      return {
        replies: rule.reply === undefined ? [] : [{ type: 'text', text: rule.reply }],
        ...(rule.handoff && { handoff: { reason: `rule ${rule.id}`, ...rule.handoff } }),
        trace: { stage: 'rule', ruleId: rule.id, durationMs: performance.now() - started },
      };
    }
    return {
      replies: this.config.fallback === undefined ? [] : [{ type: 'text', text: this.config.fallback }],
      trace: { stage: 'fallback', durationMs: performance.now() - started },
    };
  }
}
