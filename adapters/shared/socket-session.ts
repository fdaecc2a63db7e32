/**
 * What the web widget and the app channel do alike for a socket that receives replies: replay the missed ones
 * before anything live, never send one reply twice, and close connections whose client stopped answering pings.
 */
import type { WebSocket } from 'ws';
import type { UnifiedMessage } from '../../gateway/message.js';

/** Ids of the replies most recently sent on a socket; enough to recognise a reply that arrives a second time. */
const RECENT_IDS = 256;

/**
 * One socket's reply stream. A socket joins the live set before its missed replies are read (so nothing published
 * in between is lost); live replies are held until the replay is sent, then passed on unless the replay had them.
 * Replies are passed on once each, whichever way they come (live, replay, or the live hub catching up after a gap).
 */
export class ReplyStream {
  private held: UnifiedMessage[] | undefined = [];
  private readonly recent = new Set<string>();

  constructor(private readonly send: (message: UnifiedMessage) => void) {}

  /** A reply published live. */
  live(message: UnifiedMessage): void {
    if (this.held) this.held.push(message);
    else this.sendOnce(message);
  }

  /** The missed replies (oldest first), then the live ones held meanwhile. */
  replayed(missed: UnifiedMessage[]): void {
    for (const message of missed) this.sendOnce(message);
    const held = this.held ?? [];
    this.held = undefined;
    for (const message of held) this.sendOnce(message);
  }

  private sendOnce(message: UnifiedMessage): void {
    if (this.recent.has(message.id)) return;
    this.recent.add(message.id);
    if (this.recent.size > RECENT_IDS) this.recent.delete(this.recent.values().next().value!);
    this.send(message);
  }
}

export interface HeartbeatSocket extends WebSocket {
  alive?: boolean;
}

/** Marks a socket alive on each pong; see heartbeat(). */
export function watchPongs(ws: HeartbeatSocket): void {
  ws.alive = true;
  ws.on('pong', () => (ws.alive = true));
}

/** Pings every socket each interval; one that has not answered the previous ping (half-open) is terminated. */
export function heartbeat(sockets: () => Iterable<HeartbeatSocket>, seconds: number): NodeJS.Timeout {
  const timer = setInterval(() => {
    for (const ws of sockets()) {
      if (!ws.alive) ws.terminate();
      else {
        ws.alive = false;
        ws.ping();
      }
    }
  }, seconds * 1000);
  timer.unref();
  return timer;
}
