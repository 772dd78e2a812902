// Reading the two row messages the proxy looks into: RowDescription (each column's type OID and format code) and
// DataRow (each column's value). Pure wire parsing; lengths were checked when the frame was cut.

export interface RowColumnType {
  typeOid: number;
  format: number;
  /** The table and column number a column comes from (0 when it is an expression). */
  tableOid?: number;
  column?: number;
}

/** RowDescription → each column's type OID and format code (and where it comes from). */
export function readRowDescription(frame: Buffer): RowColumnType[] {
  const count = frame.readInt16BE(5);
  const columns: RowColumnType[] = [];
  let pos = 7;
  for (let i = 0; i < count; i++) {
    pos = frame.indexOf(0, pos) + 1; // field name
    const tableOid = frame.readUInt32BE(pos);
    const column = frame.readInt16BE(pos + 4);
    pos += 4 + 2;
    const typeOid = frame.readUInt32BE(pos);
    pos += 4 + 2 + 4; // type OID, type size, type modifier
    const format = frame.readInt16BE(pos);
    pos += 2;
    columns.push({ typeOid, format, tableOid, column });
  }
  return columns;
}

/** All values of a DataRow, as views into `frame` (null for SQL NULL). */
export function readDataRow(frame: Buffer): (Buffer | null)[] {
  const count = frame.readInt16BE(5);
  const values: (Buffer | null)[] = [];
  let pos = 7;
  for (let i = 0; i < count; i++) {
    const length = frame.readInt32BE(pos);
    pos += 4;
    values.push(length < 0 ? null : frame.subarray(pos, pos + length));
    if (length > 0) pos += length;
  }
  return values;
}
