import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RAW_MAX_BYTES, TEXT_MAX_CHARS, capRaw, contentAsText, conversationIdFor, createMessage, replyMessage, UnifiedMessage } from '../gateway/message.js';
import { Redis } from 'ioredis';
import { renderForChannel } from '../gateway/pipeline.js';
import { Transcripts } from '../gateway/transcript.js';
import { shardOf } from '../gateway/queues.js';

const base = {
  channel: 'web',
  channelType: 'web',
  direction: 'in' as const,
  conversationId: 'web.abc',
  sender: { id: 'v1', role: 'customer' as const },
};

describe('UnifiedMessage', () => {
  it('creates valid messages with sortable ids and a schema version', () => {
    const a = createMessage({ ...base, content: { type: 'text', text: 'one' } });
    const b = createMessage({ ...base, content: { type: 'text', text: 'two' } });
    assert.equal(a.schemaVersion, 1);
    assert.equal(a.id.length, 26);
    assert.ok(a.id < b.id, 'ULIDs created later sort later');
    assert.deepEqual(UnifiedMessage.parse(JSON.parse(JSON.stringify(a))), a, 'survives a JSON round trip (queue storage)');
  });

  it('builds a reply to an inbound message that the schema accepts as it is, checking the content and cutting its text', () => {
    const inbound = createMessage({ ...base, content: { type: 'text', text: 'hi' } });
    const trace = { stage: 'kb', faqId: 'hours', score: 0.9 };
    const reply = replyMessage(inbound, { type: 'text', text: 'We open at 9.' }, { id: 'bot', role: 'bot' }, trace);
    assert.deepEqual(UnifiedMessage.parse(reply), reply, 'every field valid, nothing the schema would add or drop');
    assert.deepEqual(
      { direction: reply.direction, conversationId: reply.conversationId, channel: reply.channel, replyTo: reply.replyTo, trace: reply.trace },
      { direction: 'out', conversationId: inbound.conversationId, channel: 'web', replyTo: inbound.id, trace },
    );
    assert.ok(reply.id > inbound.id);
    const long = replyMessage(inbound, { type: 'text', text: 'x'.repeat(TEXT_MAX_CHARS + 5) }, { id: 'bot', role: 'bot' });
    assert.equal(long.content.type === 'text' && long.content.text.length, TEXT_MAX_CHARS);
    assert.throws(() => replyMessage(inbound, { type: 'location', latitude: 200, longitude: 0 }, { id: 'bot', role: 'bot' }), /latitude/);
  });

  it('a transcript line is the message without its raw platform payload', () => {
    const transcripts = new Transcripts(new Redis({ lazyConnect: true }), 'gw', 100, 3600);
    const inbound = createMessage({ ...base, content: { type: 'text', text: 'hi' }, raw: capRaw('web/json', { text: 'hi', secret: 'x' }) });
    const line = JSON.parse(transcripts.entry(inbound).json);
    assert.equal('raw' in line, false);
    const { raw: _raw, ...rest } = inbound;
    assert.deepEqual(line, rest);
    const reply = replyMessage(inbound, { type: 'text', text: 'hello' }, { id: 'bot', role: 'bot' });
    assert.deepEqual(JSON.parse(transcripts.entry(reply).json), reply);
    assert.equal(transcripts.entry(reply).key, `gw:conv:{${inbound.conversationId}}:transcript`);
  });

  it('refuses invalid content with the failing field named', () => {
    assert.throws(() => createMessage({ ...base, content: { type: 'location', latitude: 200, longitude: 0 } }), /latitude/);
    assert.throws(() => createMessage({ ...base, content: { type: 'sticker' } as any }), /type/);
    assert.throws(() => createMessage({ ...base, sender: { id: '', role: 'customer' }, content: { type: 'text', text: 'x' } }), /sender/);
  });

  it('caps raw payloads', () => {
    assert.deepEqual(capRaw('x/json', { a: 1 }), { format: 'x/json', payload: { a: 1 }, truncated: false });
    const big = capRaw('x/json', { blob: 'y'.repeat(RAW_MAX_BYTES * 2) });
    assert.equal(big.truncated, true);
    assert.equal(Buffer.byteLength(big.payload as string), RAW_MAX_BYTES);
  });

  it('derives stable, key-safe conversation ids per channel and peer', () => {
    const id = conversationIdFor('mail', 'ann@example.com');
    assert.equal(id, conversationIdFor('mail', 'ann@example.com'));
    assert.notEqual(id, conversationIdFor('mail', 'bob@example.com'));
    assert.notEqual(id, conversationIdFor('mail2', 'ann@example.com'));
    assert.match(id, /^mail\.[A-Za-z0-9_-]{22}$/);
    assert.notEqual(conversationIdFor('c', 'a', 'bc'), conversationIdFor('c', 'ab', 'c'), 'peer parts cannot collide by concatenation');
  });

  it('spreads conversations over shards deterministically', () => {
    const counts = new Array(8).fill(0);
    for (let i = 0; i < 8000; i++) counts[shardOf(conversationIdFor('web', `visitor-${i}`), 8)]++;
    assert.ok(counts.every((n) => n > 800 && n < 1200), `roughly even: ${counts}`);
    assert.equal(shardOf('web.x', 8), shardOf('web.x', 8));
  });

  it('degrades what a channel cannot send to text, keeps what it can', () => {
    const card = createMessage({ ...base, direction: 'out', content: { type: 'link', title: 'Track', url: 'https://t.example/1', description: 'Your parcel' } });
    assert.deepEqual(renderForChannel(card, new Set(['text'])).content, { type: 'text', text: 'Track\nYour parcel\nhttps://t.example/1' });
    assert.equal(renderForChannel(card, new Set(['text', 'link'])), card);
    assert.equal(contentAsText({ type: 'location', latitude: 1.5, longitude: 2, label: 'Shop' }), 'Shop (1.5, 2)');
    assert.equal(contentAsText({ type: 'audio', transcript: 'hello' }), 'hello');
  });
});
