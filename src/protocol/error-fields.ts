// Reads the fields of an ErrorResponse or NoticeResponse frame (type byte, length, then code byte + text pairs up to a
// zero byte): the server's FATAL in a log line, the SQLSTATE of an error a backend query or a pool saw.

/** The frame's fields by their one-letter code (`C` SQLSTATE, `M` message, `S` severity, …). */
export function errorFields(frame: Buffer): Map<string, string> {
  const fields = new Map<string, string>();
  const end = 1 + frame.readInt32BE(1);
  let p = 5;
  while (p < end && frame[p] !== 0) {
    const valueEnd = frame.indexOf(0, p + 1);
    if (valueEnd < 0 || valueEnd >= end) break;
    fields.set(String.fromCharCode(frame[p]), frame.toString('utf8', p + 1, valueEnd));
    p = valueEnd + 1;
  }
  return fields;
}
