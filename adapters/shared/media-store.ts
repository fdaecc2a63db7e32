/**
 * Inbound media: platforms hand us media *ids* (WeChat MediaId, WeCom media_id...) that only the platform's media
 * API can turn into bytes, with our access token. The gateway exposes each one as `GET /media/<id>` on itself:
 *
 * - `register(mediaId)` remembers (in Redis, for `ttlSeconds`, as long as platforms keep temporary media) which
 *   channel and platform id a gateway media id stands for, and returns its URL — cheap, done before the webhook ack;
 * - `resolve(mediaId)` downloads it through the channel's fetcher into `dir` with a size cap (started in the
 *   background after the ack, and again on demand by `GET /media/<id>` on whichever process serves the request);
 * - `load(url)` fetches bytes for an outbound upload, from this store when the URL is one of ours. Such a URL comes
 *   from an API client or a bot and the bytes go on to a customer, so it may only reach public addresses: every hop
 *   (redirects included) is checked, a host name on the addresses its lookup returns as the socket connects (a name
 *   that resolves differently a second time cannot slip past), and loopback, private, link-local, CGNAT and
 *   unspecified addresses are refused unless listed in `allowPrivateNetworks`.
 *
 * The gateway id is a hash of (channel, platform id), so a platform id never appears in a URL and an id can only be
 * served once an adapter registered it. Files are written to a temp name and renamed, so readers never see half a
 * file. Files older than `retentionSeconds` (and temp files a crash left behind) are deleted by a sweep every
 * process holding the store runs hourly: nothing else would ever shrink the directory. Content types are limited to
 * media types and served with `nosniff` + a sandbox CSP, so a stored file can never run as a page on the gateway's
 * origin.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { LookupAddress } from 'node:dns';
import { lookup as dnsLookup } from 'node:dns/promises';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { BlockList, isIP } from 'node:net';
import { join, resolve as resolvePath } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline as pipe } from 'node:stream/promises';
import type { AxiosResponse } from 'axios';
import type { Express, Response } from 'express';
import type { Logger } from 'pino';
import { createHttpClient } from './http-client.js';
import { proxyConfigured } from './http-transport.js';
import type { RedisClient } from '../types.js';

export interface FetchedMedia {
  body: Readable | Buffer;
  contentType?: string | undefined;
  fileName?: string | undefined;
  /** Declared size, when the platform says (checked against the cap before reading). */
  size?: number | undefined;
}
/** How a channel downloads one of its platform media ids (with its own token, API and error handling). */
export type MediaFetcher = (mediaId: string) => Promise<FetchedMedia>;

export interface StoredMedia {
  id: string;
  url: string;
  path: string;
  contentType: string;
  size: number;
  fileName?: string | undefined;
}

export interface LoadedMedia {
  data: Buffer;
  contentType: string;
  fileName: string;
}

export class MediaTooLargeError extends Error {
  constructor(readonly maxBytes: number) {
    super(`media exceeds the ${maxBytes} byte limit`);
    this.name = 'MediaTooLargeError';
  }
}

/**
 * A media URL that reaches (or redirects to) an address outside the public internet. A TypeError, like the one an
 * unparseable URL throws, because sending it again cannot help: adapters treat both as permanent.
 */
export class MediaRefusedError extends TypeError {
  constructor(readonly host: string, readonly address: string, readonly addressClass: string) {
    super(`media URL ${host === address ? 'points' : `host ${host} resolves`} to a ${addressClass} address (${address}): refused`);
    this.name = 'MediaRefusedError';
  }
}

/** What an adapter sees as `ctx.media`. */
export interface ChannelMedia {
  readonly maxBytes: number;
  /** Tells the store how to download this channel's media ids; call once when the adapter is built. */
  setFetcher(fetch: MediaFetcher): void;
  /** The gateway URL a platform media id will be served at (pure: same id → same URL). */
  urlFor(mediaId: string): string;
  /** Remembers the id so `GET /media/<id>` can resolve it, and returns its URL. */
  register(mediaId: string): Promise<string>;
  /** Downloads now (if not stored yet) and returns the stored file. */
  resolve(mediaId: string): Promise<StoredMedia>;
  /** Bytes of an http(s) URL (or one of this gateway's media URLs) for an outbound upload, capped. */
  load(url: string): Promise<LoadedMedia>;
}

export interface MediaStoreOptions {
  dir: string;
  maxBytes: number;
  redis: RedisClient;
  /** Global key prefix (config.redis.prefix). */
  prefix: string;
  log: Logger;
  /** The gateway's public base URL (known once it listens). */
  baseUrl: () => string;
  /** How long a registered id can be resolved: WeChat temporary media lives 3 days. */
  ttlSeconds?: number;
  /** How long a downloaded file is kept (and served) after its download. */
  retentionSeconds?: number;
  /** How long `load` may take to download a URL, redirects and body included. */
  downloadTimeoutMs?: number;
  /**
   * Addresses outside the public internet that `load` may still fetch from (an internal asset server): single
   * addresses or CIDR ranges, IPv4 or IPv6. Everything else non-public is refused.
   */
  allowPrivateNetworks?: readonly string[];
}

/** How often a process sweeps the media directory for files past their retention. */
const SWEEP_INTERVAL_MS = 3600_000;
/** A temp file this old belongs to a download that will never finish (a crash, a killed process). */
const STALE_TEMP_MS = 3600_000;

/** Address ranges a media URL may not reach, by the name a refusal gives them (IPv4-mapped IPv6 forms match too). */
const NON_PUBLIC: ReadonlyArray<[name: string, ranges: ReadonlyArray<[address: string, prefix: number]>]> = [
  ['loopback', [['127.0.0.0', 8], ['::1', 128]]],
  ['private', [['10.0.0.0', 8], ['172.16.0.0', 12], ['192.168.0.0', 16], ['fc00::', 7]]],
  ['link-local', [['169.254.0.0', 16], ['fe80::', 10]]],
  ['shared (CGNAT)', [['100.64.0.0', 10]]],
  ['unspecified', [['0.0.0.0', 8], ['::', 128]]],
  ['multicast or reserved', [['224.0.0.0', 3], ['ff00::', 8]]],
];

/** Redirects `load` follows, like a browser loading an image would (CDNs redirect to a signed or regional URL). */
const MAX_REDIRECTS = 3;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

const ID = /^[a-z0-9][a-z0-9-]{0,62}\.[A-Za-z0-9_-]{32}$/;
const SAFE_TYPES = /^(image|audio|video)\/[a-z0-9.+-]+$|^application\/(pdf|octet-stream)$/;

interface Meta {
  contentType: string;
  size: number;
  fileName?: string | undefined;
}

export class MediaStore {
  private readonly dir: string;
  private readonly fetchers = new Map<string, MediaFetcher>();
  private readonly resolving = new Map<string, Promise<StoredMedia>>();
  private readonly http;
  private readonly addresses: AddressPolicy;
  private readonly downloadTimeoutMs: number;
  private readonly ttlSeconds: number;
  private readonly retentionMs: number;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly options: MediaStoreOptions) {
    this.dir = resolvePath(options.dir);
    this.ttlSeconds = options.ttlSeconds ?? 3 * 24 * 3600;
    this.retentionMs = (options.retentionSeconds ?? 30 * 24 * 3600) * 1000;
    this.downloadTimeoutMs = options.downloadTimeoutMs ?? 30_000;
    this.http = createHttpClient(undefined, this.downloadTimeoutMs);
    this.addresses = new AddressPolicy(options.allowPrivateNetworks ?? []);
  }

  /** Sweeps now and then hourly, until close(). */
  startSweeping(): void {
    if (this.sweeper) return;
    const run = () => void this.sweep().catch((err) => this.options.log.warn({ err: (err as Error).message }, 'media sweep failed'));
    this.sweeper = setInterval(run, SWEEP_INTERVAL_MS).unref();
    run();
  }

  close(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  /**
   * Deletes the files downloaded longer than the retention ago, with their metadata, and temp files of downloads
   * that never finished. Several processes may share the directory and sweep it at once: a file already gone is
   * skipped. Returns how many it deleted (a file and its metadata count once).
   */
  async sweep(now = Date.now()): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0; // nothing downloaded yet
      throw err;
    }
    let deleted = 0;
    const present = new Set(names);
    for (const name of names) {
      const temp = name.endsWith('.tmp');
      // Metadata goes with its file, or alone when a crash came between writing it and the rename.
      const orphan = name.endsWith('.json') && ID.test(name.slice(0, -5)) && !present.has(name.slice(0, -5));
      if (!temp && !orphan && !ID.test(name)) continue; // not ours
      const path = join(this.dir, name);
      const modified = await stat(path).then((s) => s.mtimeMs, () => undefined);
      if (modified === undefined || now - modified < (temp || orphan ? STALE_TEMP_MS : this.retentionMs)) continue;
      // Metadata first: a file without it counts as absent, so a reader never gets a file whose metadata is gone.
      if (!temp && !orphan) await rm(`${path}.json`, { force: true });
      await rm(path, { force: true });
      deleted++;
    }
    if (deleted > 0) this.options.log.info({ deleted }, 'media past retention deleted');
    return deleted;
  }

  get maxBytes(): number {
    return this.options.maxBytes;
  }

  idFor(channelId: string, mediaId: string): string {
    const digest = createHash('sha256').update(`${channelId}\u0000${mediaId}`).digest('base64url').slice(0, 32);
    return `${channelId}.${digest}`;
  }

  urlOf(id: string): string {
    return `${this.options.baseUrl()}/media/${id}`;
  }

  forChannel(channelId: string): ChannelMedia {
    return {
      maxBytes: this.options.maxBytes,
      setFetcher: (fetch) => void this.fetchers.set(channelId, fetch),
      urlFor: (mediaId) => this.urlOf(this.idFor(channelId, mediaId)),
      register: async (mediaId) => {
        const id = this.idFor(channelId, mediaId);
        await this.options.redis.set(this.key(id), JSON.stringify({ channel: channelId, mediaId }), 'EX', this.ttlSeconds);
        return this.urlOf(id);
      },
      resolve: (mediaId) => this.resolveId(this.idFor(channelId, mediaId), channelId, mediaId),
      load: (url) => this.load(url),
    };
  }

  /** `GET /media/<id>`: serves a stored file, downloading a registered id first when this process lacks it. */
  mount(app: Express): void {
    app.get('/media/:id', async (req, res) => {
      const id = String(req.params.id);
      try {
        const stored = await this.lookup(id);
        if (!stored) return void res.status(404).json({ error: 'unknown_media', message: `no media with id "${id}" (unknown or expired)` });
        await this.serve(stored, res);
      } catch (err) {
        const tooLarge = err instanceof MediaTooLargeError;
        this.options.log.warn({ mediaKey: id, err: (err as Error).message }, 'media could not be served');
        if (!res.headersSent) {
          res.status(502).json({
            error: tooLarge ? 'media_too_large' : 'media_unavailable',
            message: tooLarge ? (err as Error).message : 'the platform did not provide this media; it may have expired',
          });
        } else res.destroy();
      }
    });
  }

  private key(id: string): string {
    return `${this.options.prefix}:media:${id}`;
  }

  private async lookup(id: string): Promise<StoredMedia | undefined> {
    if (!ID.test(id)) return undefined;
    const local = await this.readStored(id);
    if (local) return local;
    const raw = await this.options.redis.get(this.key(id));
    if (!raw) return undefined;
    const { channel, mediaId } = JSON.parse(raw) as { channel: string; mediaId: string };
    return this.resolveId(id, channel, mediaId);
  }

  private async serve(stored: StoredMedia, res: Response): Promise<void> {
    res.status(200).set({
      'Content-Type': stored.contentType,
      'Content-Length': String(stored.size),
      'X-Content-Type-Options': 'nosniff',
      'Content-Security-Policy': "sandbox; default-src 'none'",
      'Cache-Control': 'private, max-age=86400',
      ...(stored.fileName !== undefined && {
        'Content-Disposition': `inline; filename*=UTF-8''${encodeURIComponent(stored.fileName)}`,
      }),
    });
    await pipe(createReadStream(stored.path), res);
  }

  private async readStored(id: string): Promise<StoredMedia | undefined> {
    const path = join(this.dir, id);
    try {
      const meta = JSON.parse(await readFile(`${path}.json`, 'utf8')) as Meta;
      const { size } = await stat(path);
      return { id, url: this.urlOf(id), path, contentType: meta.contentType, size, fileName: meta.fileName };
    } catch {
      return undefined;
    }
  }

  private resolveId(id: string, channel: string, mediaId: string): Promise<StoredMedia> {
    let pending = this.resolving.get(id);
    if (!pending) {
      pending = this.download(id, channel, mediaId).finally(() => this.resolving.delete(id));
      this.resolving.set(id, pending);
    }
    return pending;
  }

  private async download(id: string, channel: string, mediaId: string): Promise<StoredMedia> {
    const existing = await this.readStored(id);
    if (existing) return existing;
    const fetch = this.fetchers.get(channel);
    if (!fetch) throw new Error(`channel ${channel} cannot download media in this process`);
    const fetched = await fetch(mediaId);
    if (fetched.size !== undefined && fetched.size > this.options.maxBytes) {
      if (fetched.body instanceof Readable) fetched.body.destroy();
      throw new MediaTooLargeError(this.options.maxBytes);
    }
    await mkdir(this.dir, { recursive: true });
    const path = join(this.dir, id);
    const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    const body = Buffer.isBuffer(fetched.body) ? Readable.from([fetched.body]) : fetched.body;
    try {
      await pipe(body, capped(this.options.maxBytes), createWriteStream(tmp, { mode: 0o600 }));
      const { size } = await stat(tmp);
      const meta: Meta = { contentType: safeType(fetched.contentType), size, fileName: fetched.fileName };
      // Metadata first: a file without it is treated as absent, so a crash in between only costs a re-download.
      await writeFile(`${path}.json`, JSON.stringify(meta));
      await rename(tmp, path);
      this.options.log.info({ mediaKey: id, size, contentType: meta.contentType }, 'media stored');
      return { id, url: this.urlOf(id), path, ...meta };
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /** Bytes of a URL for an outbound upload: this gateway's own media URLs come from the store, others over HTTP. */
  async load(url: string): Promise<LoadedMedia> {
    const own = `${this.options.baseUrl()}/media/`;
    if (url.startsWith(own)) {
      const stored = await this.lookup(url.slice(own.length));
      if (!stored) throw new Error(`media ${url} is unknown or expired`);
      return { data: await readFile(stored.path), contentType: stored.contentType, fileName: stored.fileName ?? fileNameFor(stored.id, stored.contentType) };
    }
    const parsed = new URL(url);
    // The HTTP client's timeout only bounds each wait for a byte: a server trickling its answer (through redirects)
    // would hold a delivery worker for as long as it liked. This bounds the whole download, body included.
    const deadline = AbortSignal.timeout(this.downloadTimeoutMs);
    try {
      return await this.downloadUrl(parsed, deadline);
    } catch (err) {
      if (!deadline.aborted) throw err;
      throw new Error(`downloading ${parsed.origin}${parsed.pathname} took longer than ${this.downloadTimeoutMs} ms`);
    }
  }

  private async downloadUrl(url: URL, signal: AbortSignal): Promise<LoadedMedia> {
    const res = await this.fetchPublic(url, signal);
    if (res.status < 200 || res.status >= 300) {
      res.data.destroy();
      throw new Error(`downloading ${url.origin}${url.pathname} failed: HTTP ${res.status}`);
    }
    const declared = Number(res.headers['content-length']);
    if (declared > this.options.maxBytes) {
      res.data.destroy();
      throw new MediaTooLargeError(this.options.maxBytes);
    }
    const chunks: Buffer[] = [];
    const collect = async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) chunks.push(chunk);
    };
    await pipe(res.data, capped(this.options.maxBytes), collect, { signal });
    const contentType = String(res.headers['content-type'] ?? 'application/octet-stream').split(';')[0]!.trim();
    const last = decodeURIComponent(url.pathname.split('/').pop() ?? '');
    return { data: Buffer.concat(chunks), contentType, fileName: /\.[a-z0-9]{2,5}$/i.test(last) ? last : fileNameFor('media', contentType) };
  }

  /** GETs a URL as a stream, following up to MAX_REDIRECTS redirects, every hop held to the address policy. */
  private async fetchPublic(start: URL, signal: AbortSignal): Promise<AxiosResponse<Readable>> {
    let url = start;
    for (let redirects = 0; ; redirects++) {
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`only http(s) media URLs can be sent, not ${url.protocol}`);
      await this.addresses.checkBeforeConnect(url.hostname);
      const res = await this.http
        .get<Readable>(url.href, { responseType: 'stream', maxRedirects: 0, signal, ...(this.addresses.lookup && { lookup: this.addresses.lookup }) })
        .catch(rethrowRefusal);
      const location = res.headers['location'];
      if (!REDIRECT_STATUSES.has(res.status) || typeof location !== 'string') return res;
      res.data.destroy();
      if (redirects === MAX_REDIRECTS) throw new Error(`downloading ${start.origin}${start.pathname} failed: more than ${MAX_REDIRECTS} redirects`);
      url = new URL(location, url);
    }
  }
}

/**
 * Which addresses a media URL may reach. A host name is checked on what its lookup returns as the socket connects,
 * so the address checked is the address used; an address literal needs no lookup (Node skips it) and is checked
 * before connecting. Through a proxy the proxy connects (and resolves) instead, so the name is resolved and checked
 * beforehand — the best that can be done without the proxy's help.
 */
class AddressPolicy {
  private readonly nonPublic = NON_PUBLIC.map(([name, ranges]) => ({ name, list: blockListOf(ranges) }));
  private readonly allowed = new BlockList();
  private readonly proxied = proxyConfigured();
  /** The lookup sockets connect with; none through a proxy (it would check the proxy's own, often private, address). */
  readonly lookup: ((hostname: string, options: object) => Promise<LookupAddress[]>) | undefined;

  constructor(allowPrivateNetworks: readonly string[]) {
    for (const entry of allowPrivateNetworks) addNetwork(this.allowed, entry);
    this.lookup = this.proxied ? undefined : async (hostname, options) => this.resolve(hostname, (options as { family?: number }).family);
  }

  async checkBeforeConnect(hostname: string): Promise<void> {
    const host = hostname.replace(/^\[(.*)\]$/, '$1');
    if (isIP(host)) this.check(host, host);
    else if (this.proxied) await this.resolve(host);
  }

  private async resolve(hostname: string, family?: number): Promise<LookupAddress[]> {
    const addresses = await dnsLookup(hostname, { all: true, family: family === 4 || family === 6 ? family : 0 });
    // Every address: the socket may try any of them.
    for (const { address } of addresses) this.check(hostname, address);
    return addresses;
  }

  private check(host: string, address: string): void {
    const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (this.allowed.check(address, type)) return;
    const refused = this.nonPublic.find(({ list }) => list.check(address, type));
    if (refused) throw new MediaRefusedError(host, address, refused.name);
  }
}

function blockListOf(ranges: ReadonlyArray<[address: string, prefix: number]>): BlockList {
  const list = new BlockList();
  for (const [address, prefix] of ranges) list.addSubnet(address, prefix, isIP(address) === 6 ? 'ipv6' : 'ipv4');
  return list;
}

/** Adds "10.1.0.0/16", "fd00::/8" or a single address; anything else is a configuration error. */
function addNetwork(list: BlockList, entry: string): void {
  const [address = '', prefix] = entry.trim().split('/');
  const version = isIP(address);
  const bits = prefix === undefined ? undefined : Number(prefix);
  const maxBits = version === 6 ? 128 : 32;
  if (version === 0 || (bits !== undefined && !(Number.isInteger(bits) && bits >= 0 && bits <= maxBits))) {
    throw new Error(`allowed private network "${entry}" is not an IP address or CIDR range`);
  }
  list.addSubnet(address, bits ?? maxBits, version === 6 ? 'ipv6' : 'ipv4');
}

/** A refusal from the lookup reaches us wrapped in axios's error: unwrap it so callers see what happened. */
function rethrowRefusal(err: unknown): never {
  for (let cause: unknown = err; cause instanceof Error; cause = cause.cause) {
    if (cause instanceof MediaRefusedError) throw cause;
  }
  throw err;
}

/** A pass-through stream that fails once more than `maxBytes` went through. */
function capped(maxBytes: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > maxBytes) cb(new MediaTooLargeError(maxBytes));
      else cb(null, chunk);
    },
  });
}

function safeType(contentType: string | undefined): string {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  return SAFE_TYPES.test(type) ? type : 'application/octet-stream';
}

const EXTENSIONS: Record<string, string> = {
  'image/jpeg': 'jpg',
  'image/png': 'png',
  'image/gif': 'gif',
  'image/webp': 'webp',
  'audio/amr': 'amr',
  'audio/mpeg': 'mp3',
  'audio/silk': 'silk',
  'video/mp4': 'mp4',
};

/** A file name with an extension the platform's upload API accepts (they check it). */
export function fileNameFor(base: string, contentType: string): string {
  return `${base.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40)}.${EXTENSIONS[contentType] ?? 'bin'}`;
}
