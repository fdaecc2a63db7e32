/**
 * Queue layout. Each pipeline stage is split into `shards` BullMQ queues and a conversation always hashes to the
 * same shard. BullMQ OSS has no per-group ordering, so order comes from giving each shard exactly one consumer at a
 * time (see shards.ts); different conversations still run in parallel across shards. Queue names carry a Redis
 * Cluster hash tag, so each queue lives in one slot and the shards spread over the cluster's nodes.
 */
export type Stage = 'in' | 'out';

export function shardOf(conversationId: string, shards: number): number {
  // FNV-1a: fast, stable across processes and versions (unlike a language's built-in string hash).
  let h = 0x811c9dc5;
  for (let i = 0; i < conversationId.length; i++) {
    h ^= conversationId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % shards;
}

export function queueName(stage: Stage, shard: number): string {
  return `{${stage}-${shard}}`;
}

export function allQueueNames(shards: number): string[] {
  const names: string[] = [];
  for (const stage of ['in', 'out'] as const) for (let i = 0; i < shards; i++) names.push(queueName(stage, i));
  return names;
}
