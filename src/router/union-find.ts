// Union-find over string keys ("<ref id>.<column>"), used to group columns that a query equates (`a.x = b.y`), so a
// key pinned on one column pins the whole class and joins can be checked for co-location on the sharding column.

export class UnionFind {
  // Allocated on first use: most levels never equate anything.
  private parent: Map<string, string> | null = null;
  private members: Map<string, string[]> | null = null;

  find(key: string): string {
    if (this.parent === null) return key;
    let root = key;
    for (;;) {
      const p = this.parent.get(root);
      if (p === undefined || p === root) break;
      root = p;
    }
    // Path compression.
    let cur = key;
    while (cur !== root) {
      const next = this.parent.get(cur);
      if (next === undefined) break;
      this.parent.set(cur, root);
      cur = next;
    }
    return root;
  }

  union(a: string, b: string): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return;
    if (this.parent === null) this.parent = new Map();
    const ma = this.membersOfRoot(ra);
    const mb = this.membersOfRoot(rb);
    // Attach the smaller class under the larger one.
    const [big, small, bigMembers, smallMembers] =
      ma.length >= mb.length ? [ra, rb, ma, mb] : [rb, ra, mb, ma];
    this.parent.set(small, big);
    if (!this.parent.has(big)) this.parent.set(big, big);
    for (const m of smallMembers) bigMembers.push(m);
    const members = this.membersMap();
    members.set(big, bigMembers);
    members.delete(small);
  }

  same(a: string, b: string): boolean {
    return this.find(a) === this.find(b);
  }

  /** Every key known to be equal to `key` (including itself). */
  classOf(key: string): readonly string[] {
    return this.membersOfRoot(this.find(key));
  }

  private membersOfRoot(root: string): string[] {
    const members = this.membersMap();
    let m = members.get(root);
    if (m === undefined) {
      m = [root];
      members.set(root, m);
    }
    return m;
  }

  private membersMap(): Map<string, string[]> {
    if (this.members === null) this.members = new Map();
    return this.members;
  }
}
