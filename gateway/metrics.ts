/** Prometheus metrics (prom-client), served at GET /metrics. One registry per gateway instance. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly messagesIn = new Counter({
    name: 'gw_messages_in_total',
    help: 'Inbound messages accepted, by channel; duplicate="true" for dropped platform retries',
    labelNames: ['channel', 'duplicate'] as const,
    registers: [this.registry],
  });
  readonly messagesOut = new Counter({
    name: 'gw_messages_out_total',
    help: 'Outbound deliveries by channel and result (delivered, retry, failed, blocked)',
    labelNames: ['channel', 'result'] as const,
    registers: [this.registry],
  });
  readonly stageSeconds = new Histogram({
    name: 'gw_stage_seconds',
    help: 'Time spent per pipeline stage (ingest, bot, inbound, deliver, end_to_end)',
    labelNames: ['stage'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly failures = new Counter({
    name: 'gw_failures_total',
    help: 'Failures by stage and reason',
    labelNames: ['stage', 'reason'] as const,
    registers: [this.registry],
  });
  readonly rejected = new Counter({
    name: 'gw_http_rejected_total',
    help: 'Requests refused with a 4xx, by error code',
    labelNames: ['error'] as const,
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'gw_queue_jobs',
    help: 'Jobs per stage and state, summed over shards',
    labelNames: ['stage', 'state'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'gw_' });
  }
}
