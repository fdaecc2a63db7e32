/** A dependency-free SVG chart: delivered throughput and p99 latency against offered load. */
export interface ChartPoint {
  offered: number;
  delivered: number;
  p99: number;
}

export function renderChart(title: string, points: ChartPoint[]): string {
  const W = 720, H = 420, L = 70, R = 70, T = 50, B = 60;
  const maxX = Math.max(...points.map((p) => p.offered), 1) * 1.05;
  const maxY = Math.max(...points.map((p) => Math.max(p.delivered, p.offered)), 1) * 1.1;
  const maxL = Math.max(...points.map((p) => p.p99), 1) * 1.2;
  const x = (v: number) => L + (v / maxX) * (W - L - R);
  const y = (v: number) => H - B - (v / maxY) * (H - T - B);
  const yl = (v: number) => H - B - (v / maxL) * (H - T - B);
  const line = (pts: Array<[number, number]>) => pts.map(([a, b], i) => `${i ? 'L' : 'M'}${a.toFixed(1)},${b.toFixed(1)}`).join(' ');
  const ticks = (max: number, n = 5) => Array.from({ length: n + 1 }, (_, i) => Math.round((max / n) * i));
  const sorted = [...points].sort((a, b) => a.offered - b.offered);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#fff"/>
<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${title}</text>
<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#333"/>
<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#333"/>
<line x1="${W - R}" y1="${T}" x2="${W - R}" y2="${H - B}" stroke="#333"/>
${ticks(maxX).map((v) => `<text x="${x(v)}" y="${H - B + 18}" text-anchor="middle">${v}</text>`).join('\n')}
${ticks(maxY).map((v) => `<text x="${L - 8}" y="${y(v) + 4}" text-anchor="end">${v}</text><line x1="${L}" y1="${y(v)}" x2="${W - R}" y2="${y(v)}" stroke="#eee"/>`).join('\n')}
${ticks(maxL).map((v) => `<text x="${W - R + 8}" y="${yl(v) + 4}" fill="#c2410c">${v}</text>`).join('\n')}
<text x="${W / 2}" y="${H - 18}" text-anchor="middle">offered load (msg/s)</text>
<text x="18" y="${H / 2}" transform="rotate(-90 18 ${H / 2})" text-anchor="middle" fill="#1d4ed8">delivered replies/s</text>
<text x="${W - 14}" y="${H / 2}" transform="rotate(90 ${W - 14} ${H / 2})" text-anchor="middle" fill="#c2410c">p99 latency (ms)</text>
<path d="${line([[x(0), y(0)], [x(maxX / 1.05), y(maxX / 1.05)]])}" stroke="#999" stroke-dasharray="4 4" fill="none"/>
<path d="${line(sorted.map((p) => [x(p.offered), y(p.delivered)]))}" stroke="#1d4ed8" stroke-width="2.5" fill="none"/>
${sorted.map((p) => `<circle cx="${x(p.offered)}" cy="${y(p.delivered)}" r="4" fill="#1d4ed8"/>`).join('\n')}
<path d="${line(sorted.map((p) => [x(p.offered), yl(p.p99)]))}" stroke="#c2410c" stroke-width="2.5" fill="none"/>
${sorted.map((p) => `<rect x="${x(p.offered) - 4}" y="${yl(p.p99) - 4}" width="8" height="8" fill="#c2410c"/>`).join('\n')}
</svg>
`;
}
