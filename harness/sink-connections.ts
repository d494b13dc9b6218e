/**
 * A sink's TCP connections: the record of each (from accept to close, exact), the session each SMTP
 * session runs on (found by peer address, re-linked after STARTTLS swaps the socket), and the number
 * open at once overall and per source IP, which the connection-limit tests read.
 */
import type net from 'node:net';
import type { SMTPServerSession } from 'smtp-server';
import type { ConnectionRecord } from './sink-records.js';

export interface LiveConnection {
  record: ConnectionRecord;
  /** The raw socket, replaced by the TLS socket after STARTTLS. */
  socket: net.Socket;
  peer: string;
  /** Between an accepted MAIL FROM and the final reply to its DATA (or the connection's end). */
  inTransaction: boolean;
}

export class SinkConnections {
  /** Every connection since start/reset, oldest first (still-open ones have no closedAt). */
  list: ConnectionRecord[] = [];
  private readonly live = new Set<LiveConnection>();
  private readonly bySession = new Map<string, LiveConnection>();
  private readonly byPeer = new Map<string, LiveConnection>();
  private readonly openByIp = new Map<string, number>();
  private readonly maxByIp = new Map<string, number>();
  private maxOpen = 0;
  private transactions = 0;
  private maxTransactions = 0;
  private nextId = 1;

  /** `changed` runs on every open and close (the sink re-checks its waiters). */
  constructor(
    private readonly name: string,
    private readonly changed: () => void,
  ) {}

  get openCount(): number {
    return this.live.size;
  }

  current(sourceIp?: string): number {
    return sourceIp === undefined ? this.live.size : (this.openByIp.get(sourceIp) ?? 0);
  }

  max(sourceIp?: string): number {
    return sourceIp === undefined ? this.maxOpen : (this.maxByIp.get(sourceIp) ?? 0);
  }

  /**
   * Most SMTP transactions in progress at once: the concurrency a client's delivery agents hold. A TCP
   * connection can outlast its transaction by a QUIT the client does not wait for (Postfix closes
   * without reading the reply), so connection counts overstate a client's concurrency by that tail.
   */
  maxInTransaction(): number {
    return this.maxTransactions;
  }

  transactionStarted(conn: LiveConnection): void {
    if (conn.inTransaction) return;
    conn.inTransaction = true;
    this.transactions++;
    this.maxTransactions = Math.max(this.maxTransactions, this.transactions);
  }

  transactionEnded(conn: LiveConnection): void {
    if (!conn.inTransaction) return;
    conn.inTransaction = false;
    this.transactions--;
  }

  accept(socket: net.Socket): void {
    const sourceIp = socket.remoteAddress ?? '';
    const sourcePort = socket.remotePort ?? 0;
    const record: ConnectionRecord = {
      id: `${this.name}#${this.nextId++}`,
      sourceIp,
      sourcePort,
      ehlo: '',
      openedAt: Date.now(),
      messages: 0,
      tls: false,
    };
    const peer = `${sourceIp}:${sourcePort}`;
    const conn: LiveConnection = { record, socket, peer, inTransaction: false };
    this.live.add(conn);
    this.byPeer.set(peer, conn);
    this.list.push(record);
    const open = (this.openByIp.get(sourceIp) ?? 0) + 1;
    this.openByIp.set(sourceIp, open);
    this.maxByIp.set(sourceIp, Math.max(open, this.maxByIp.get(sourceIp) ?? 0));
    this.maxOpen = Math.max(this.maxOpen, this.live.size);
    socket.once('close', () => this.close(conn));
    this.changed();
  }

  /** Idempotent: raw socket, TLS socket and smtp-server may each report the same close. */
  close(conn: LiveConnection): void {
    if (!this.live.delete(conn)) return;
    this.transactionEnded(conn);
    const { record, peer } = conn;
    record.closedAt = Date.now();
    if (this.byPeer.get(peer) === conn) this.byPeer.delete(peer);
    for (const [id, c] of this.bySession) if (c === conn) this.bySession.delete(id);
    const left = (this.openByIp.get(record.sourceIp) ?? 1) - 1;
    if (left > 0) this.openByIp.set(record.sourceIp, left);
    else this.openByIp.delete(record.sourceIp);
    this.changed();
  }

  /** STARTTLS hands the session a new socket; its close ends the connection too. */
  secure(socket: net.Socket, session: SMTPServerSession): void {
    const conn = this.of(session);
    if (conn && conn.socket !== socket) {
      conn.socket = socket;
      conn.record.tls = true;
      socket.once('close', () => this.close(conn));
    }
  }

  /** The connection behind a session; refreshes EHLO/TLS from it. */
  of(session: SMTPServerSession, link = true): LiveConnection | undefined {
    let conn = this.bySession.get(session.id);
    if (!conn && link) {
      conn = this.byPeer.get(`${session.remoteAddress}:${session.remotePort}`);
      if (conn) this.bySession.set(session.id, conn);
    }
    if (conn) {
      if (session.hostNameAppearsAs) conn.record.ehlo = String(session.hostNameAppearsAs);
      if (session.secure) conn.record.tls = true;
    }
    return conn;
  }

  /** Forget closed connections and peaks; open connections stay recorded. */
  reset(): void {
    this.list = [...this.live].map((c) => c.record);
    this.maxOpen = this.live.size;
    this.maxTransactions = this.transactions;
    this.maxByIp.clear();
    for (const [ip, n] of this.openByIp) this.maxByIp.set(ip, n);
  }

  destroyAll(): void {
    for (const { socket } of this.live) socket.destroy();
  }
}
