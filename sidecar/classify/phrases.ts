/**
 * One pass over a reply finds every literal phrase of every rule: an Aho–Corasick automaton compiled into
 * a dense transition table over the characters the phrases use (all other characters share one class).
 * A term is one literal or several literals that must occur in that order (`"user " … " unknown"`).
 * Upper-case ASCII letters share their lower-case letter's class, so the reply is never lower-cased.
 * Cost per reply is one table step per character, whatever the number of phrases.
 */

export interface LiteralTerm {
  /** Caller's id for the term (returned by `match`). */
  id: number;
  /** Lower-case pieces, in the order they must occur. */
  pieces: readonly string[];
}

export class PhraseSet {
  private readonly classOf = new Uint8Array(128);
  private readonly width: number;
  /**
   * Transitions by `state * width + class`. Entries are state offsets (`state * width`), bit-inverted
   * (negative) when the target state ends a piece, so the scan loop tests outputs with one sign check.
   */
  private readonly next: Int32Array;
  /** outStart[s]..outStart[s+1] index into outPieces: the pieces that end in state s. */
  private readonly outStart: Int32Array;
  private readonly outPieces: Int32Array;
  /** For each piece: the terms (index into `terms`) it belongs to. */
  private readonly pieceTerms: number[][];
  /** For each piece: the ids of the one-piece terms it is (found once, so they need no term marks). */
  private readonly pieceSingles: number[][];
  private readonly terms: readonly LiteralTerm[];
  private readonly seen: Uint8Array;
  private readonly termSeen: Uint8Array;

  constructor(terms: readonly LiteralTerm[]) {
    this.terms = terms;
    const pieceIndex = new Map<string, number>();
    this.pieceTerms = [];
    terms.forEach((t, ti) => {
      for (const p of t.pieces) {
        let pi = pieceIndex.get(p);
        if (pi === undefined) {
          pi = pieceIndex.size;
          pieceIndex.set(p, pi);
          this.pieceTerms.push([]);
        }
        const list = this.pieceTerms[pi]!;
        if (list[list.length - 1] !== ti) list.push(ti);
      }
    });
    this.seen = new Uint8Array(pieceIndex.size);
    this.pieceSingles = this.pieceTerms.map((list) =>
      list.filter((ti) => terms[ti]!.pieces.length === 1).map((ti) => terms[ti]!.id),
    );
    this.pieceTerms = this.pieceTerms.map((list) => list.filter((ti) => terms[ti]!.pieces.length > 1));
    this.termSeen = new Uint8Array(terms.length);
    let classes = 1;
    for (const p of pieceIndex.keys())
      for (let i = 0; i < p.length; i++) {
        const c = p.charCodeAt(i);
        if (c < 128 && this.classOf[c] === 0) this.classOf[c] = classes++;
      }
    for (let c = 65; c <= 90; c++) this.classOf[c] = this.classOf[c + 32]!;
    this.width = classes;
    const built = this.build([...pieceIndex.keys()]);
    this.next = built.next;
    this.outStart = built.outStart;
    this.outPieces = built.outPieces;
  }

  private build(pieces: string[]): { next: Int32Array; outStart: Int32Array; outPieces: Int32Array } {
    const w = this.width;
    const trie: number[][] = [new Array<number>(w).fill(-1)];
    const own: number[][] = [[]];
    pieces.forEach((p, pi) => {
      let s = 0;
      for (let i = 0; i < p.length; i++) {
        const c = p.charCodeAt(i);
        const k = c < 128 ? this.classOf[c]! : 0;
        let n = trie[s]![k]!;
        if (n < 0) {
          n = trie.length;
          trie.push(new Array<number>(w).fill(-1));
          own.push([]);
          trie[s]![k] = n;
        }
        s = n;
      }
      own[s]!.push(pi);
    });
    // Breadth-first: fail links, then full transitions (a DFA), then each state's inherited outputs.
    const fail = new Int32Array(trie.length);
    const next = new Int32Array(trie.length * w);
    const out: number[][] = own.map((o) => [...o]);
    const queue: number[] = [];
    for (let k = 0; k < w; k++) {
      const n = trie[0]![k]!;
      next[k] = Math.max(n, 0);
      if (n > 0) queue.push(n);
    }
    for (let qi = 0; qi < queue.length; qi++) {
      const s = queue[qi]!;
      out[s]!.push(...out[fail[s]!]!);
      for (let k = 0; k < w; k++) {
        const n = trie[s]![k]!;
        const viaFail = next[fail[s]! * w + k]!;
        if (n < 0) next[s * w + k] = viaFail;
        else {
          next[s * w + k] = n;
          fail[n] = viaFail;
          queue.push(n);
        }
      }
    }
    const outStart = new Int32Array(trie.length + 1);
    const flat: number[] = [];
    out.forEach((o, s) => {
      outStart[s] = flat.length;
      flat.push(...o);
    });
    outStart[trie.length] = flat.length;
    for (let i = 0; i < next.length; i++) {
      const target = next[i]!;
      next[i] = out[target]!.length > 0 ? ~(target * w) : target * w;
    }
    return { next, outStart, outPieces: Int32Array.from(flat) };
  }

  /** Ids of the terms found in `text` (any case), in no particular order. */
  match(text: string): number[] {
    const { classOf, next, outStart, outPieces, seen, width } = this;
    const found: number[] = [];
    let s = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      const v = next[s + (c < 128 ? classOf[c]! : 0)]!;
      if (v >= 0) {
        s = v;
        continue;
      }
      s = ~v;
      const state = s / width;
      for (let o = outStart[state]!, end = outStart[state + 1]!; o < end; o++) {
        const pi = outPieces[o]!;
        if (seen[pi] === 0) {
          seen[pi] = 1;
          found.push(pi);
        }
      }
    }
    const ids: number[] = [];
    if (found.length === 0) return ids;
    const { termSeen, terms, pieceTerms, pieceSingles } = this;
    let touched: number[] | null = null;
    let lower: string | null = null;
    for (const pi of found) {
      seen[pi] = 0;
      for (const id of pieceSingles[pi]!) ids.push(id);
      const multi = pieceTerms[pi]!;
      for (let k = 0; k < multi.length; k++) {
        const ti = multi[k]!;
        if (termSeen[ti] !== 0) continue;
        termSeen[ti] = 1;
        (touched ??= []).push(ti);
        const t = terms[ti]!;
        if (inOrder((lower ??= text.toLowerCase()), t.pieces)) ids.push(t.id);
      }
    }
    if (touched) for (const ti of touched) termSeen[ti] = 0;
    return ids;
  }
}

function inOrder(text: string, pieces: readonly string[]): boolean {
  let at = 0;
  for (const p of pieces) {
    const i = text.indexOf(p, at);
    if (i < 0) return false;
    at = i + p.length;
  }
  return true;
}
