/** "Is this instant within business hours in that time zone?" using the platform's own time-zone data (Intl). */
import type { BusinessHours } from '../config.js';

const formatters = new Map<string, Intl.DateTimeFormat>();
const WEEKDAYS: Record<string, number> = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 };

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(timeZone, f);
  }
  return f;
}

/** ISO weekday (1 = Monday) and minutes since midnight at `at` in `timeZone`. */
export function localTime(at: number, timeZone: string): { weekday: number; minutes: number } {
  const parts = Object.fromEntries(formatter(timeZone).formatToParts(at).map((p) => [p.type, p.value]));
  return { weekday: WEEKDAYS[parts.weekday!] ?? 0, minutes: Number(parts.hour) * 60 + Number(parts.minute) };
}

const toMinutes = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

export function withinBusinessHours(at: number, hours: BusinessHours): boolean {
  const { weekday, minutes } = localTime(at, hours.timeZone);
  const from = toMinutes(hours.from);
  const to = toMinutes(hours.to);
  // An overnight span (22:00–06:00) belongs to the day it starts on.
  if (from <= to) return hours.days.includes(weekday) && minutes >= from && minutes < to;
  if (minutes >= from) return hours.days.includes(weekday);
  const yesterday = weekday === 1 ? 7 : weekday - 1;
  return minutes < to && hours.days.includes(yesterday);
}
