/**
 * Threshold calibration for KB answers: given labelled questions (the FAQ id that should answer, or none for
 * questions the KB must not answer), find the normalised-score threshold that gets the most of them right —
 * answered with the right entry above it, left to the next stage below it.
 */
import { parse as parseCsv } from 'csv-parse/sync';

export interface CalibrationSample {
  query: string;
  /** Expected FAQ id; empty/undefined: the KB should not answer. */
  expected?: string | undefined;
}

export interface CalibrationResult {
  threshold: number;
  accuracy: number;
  /** Answered correctly / answered at all, at the chosen threshold. */
  precision: number;
  /** Answerable questions answered correctly, at the chosen threshold. */
  recall: number;
  samples: number;
  misses: Array<{ query: string; expected: string | undefined; got: string | undefined; score: number }>;
}

export function parseCalibrationCsv(text: string): CalibrationSample[] {
  const rows = parseCsv(text, { columns: true, skip_empty_lines: true, trim: true, bom: true }) as Array<Record<string, string>>;
  return rows.map((r) => ({ query: r.query ?? '', expected: r.expected || undefined })).filter((s) => s.query);
}

/**
 * `wrongAnswerCost`: how much worse a wrong KB answer is than leaving a question to the next stage (intent model,
 * clarifying question, fallback). The threshold maximises right answers − cost × wrong answers.
 */
export function calibrate(
  search: (query: string) => { id: string; score: number } | undefined,
  samples: CalibrationSample[],
  wrongAnswerCost = 2,
): CalibrationResult {
  const scored = samples.map((s) => {
    const best = search(s.query);
    return { ...s, got: best?.id, score: best?.score ?? 0 };
  });
  const evaluate = (t: number) => {
    let correct = 0;
    let answered = 0;
    let answeredRight = 0;
    let wrong = 0;
    const answerable = scored.filter((s) => s.expected).length;
    for (const s of scored) {
      const answers = s.got !== undefined && s.score >= t;
      if (answers) answered++;
      const right = s.expected ? answers && s.got === s.expected : !answers;
      if (right) correct++;
      if (answers && s.got === s.expected) answeredRight++;
      if (answers && s.got !== s.expected) wrong++;
    }
    return { utility: correct - wrongAnswerCost * wrong, accuracy: correct / (scored.length || 1), precision: answered ? answeredRight / answered : 1, recall: answerable ? answeredRight / answerable : 1 };
  };
  // Candidate thresholds: midway between neighbouring observed scores (and just above the highest).
  const scores = [...new Set(scored.map((s) => s.score))].sort((a, b) => a - b);
  const candidates = scores.map((s, i) => (i + 1 < scores.length ? (s + scores[i + 1]!) / 2 : s + 0.01));
  let best = { threshold: 0.5, ...evaluate(0.5) };
  const ties: number[] = [];
  for (const t of candidates) {
    const r = evaluate(t);
    if (r.utility > best.utility + 1e-12) {
      best = { threshold: t, ...r };
      ties.length = 0;
      ties.push(t);
    } else if (Math.abs(r.utility - best.utility) <= 1e-12) ties.push(t);
  }
  // Among equally good thresholds prefer the middle one: the widest margin on both sides.
  if (ties.length > 1) {
    const middle = ties[Math.floor(ties.length / 2)]!;
    best = { threshold: middle, ...evaluate(middle) };
  }
  const threshold = Math.round(best.threshold * 1000) / 1000;
  const { utility: _utility, ...figures } = evaluate(threshold);
  return {
    threshold,
    ...figures,
    samples: scored.length,
    misses: scored
      .filter((s) => (s.expected ? !(s.got === s.expected && s.score >= threshold) : s.got !== undefined && s.score >= threshold))
      .map((s) => ({ query: s.query, expected: s.expected, got: s.got, score: Math.round(s.score * 1000) / 1000 })),
  };
}
