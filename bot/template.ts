/** Reply templates: `{{ name }}` or `{{ a.b }}` looked up in a plain object; a missing value renders empty. */
const PLACEHOLDER = /\{\{\s*([A-Za-z0-9_.]+)\s*\}\}/g;

export function renderTemplate(template: string, vars: Record<string, unknown>): string {
  return template.replace(PLACEHOLDER, (_all, path: string) => {
    let value: unknown = vars;
    for (const part of path.split('.')) {
      if (value === null || typeof value !== 'object') return '';
      value = (value as Record<string, unknown>)[part];
    }
    return value === undefined || value === null || typeof value === 'object' ? '' : String(value);
  });
}
