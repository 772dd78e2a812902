// The names and limits inside the client's extended-protocol messages that the sharded session looks at: the portal
// and statement of a Bind, the portal and row limit of an Execute, the portal or statement a Describe / Close names.
// Frames come whole from FrameReader; these read fields, nothing more (the server validates the rest).

/** End of the C string starting at `from` (its NUL). */
function stringEnd(frame: Buffer, from: number): number {
  const end = frame.indexOf(0, from);
  return end < 0 ? frame.length : end;
}

/** The portal a Bind creates ('' = unnamed). */
export function bindPortal(frame: Buffer): string {
  return frame.toString('utf8', 5, stringEnd(frame, 5));
}

/** The prepared statement a Bind uses ('' = unnamed). */
export function bindStatement(frame: Buffer): string {
  const portalEnd = stringEnd(frame, 5);
  return frame.toString('utf8', portalEnd + 1, stringEnd(frame, portalEnd + 1));
}

/** The portal an Execute runs ('' = unnamed). */
export function executePortal(frame: Buffer): string {
  return frame.toString('utf8', 5, stringEnd(frame, 5));
}

/** An Execute's row limit (0 = all rows); read without decoding the portal name. */
export function executeLimit(frame: Buffer): number {
  const end = stringEnd(frame, 5);
  return end + 5 <= frame.length ? frame.readInt32BE(end + 1) : 0;
}

/** 'P' (portal) or 'S' (statement), and the name, of a Describe or Close. */
export function describedTarget(frame: Buffer): { isPortal: boolean; name: string } {
  return { isPortal: frame[5] === 0x50, name: frame.toString('utf8', 6, stringEnd(frame, 6)) };
}
