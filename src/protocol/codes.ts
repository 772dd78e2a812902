// Message type bytes of the PostgreSQL v3 frontend/backend protocol, as char codes (hot-path switches compare numbers),
// and which of them a logged-in client may send.

/** Messages a client (frontend) sends. */
export const Frontend = {
  Bind: 0x42, // 'B'
  Close: 0x43, // 'C'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyFail: 0x66, // 'f'
  Describe: 0x44, // 'D'
  Execute: 0x45, // 'E'
  Flush: 0x48, // 'H'
  FunctionCall: 0x46, // 'F'
  Parse: 0x50, // 'P'
  Password: 0x70, // 'p' (also SASLInitialResponse / SASLResponse / GSSResponse)
  Query: 0x51, // 'Q'
  Sync: 0x53, // 'S'
  Terminate: 0x58, // 'X'
} as const;

/** Messages a server (backend) sends. */
export const Backend = {
  Authentication: 0x52, // 'R'
  BackendKeyData: 0x4b, // 'K'
  BindComplete: 0x32, // '2'
  CloseComplete: 0x33, // '3'
  CommandComplete: 0x43, // 'C'
  CopyBothResponse: 0x57, // 'W'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyInResponse: 0x47, // 'G'
  CopyOutResponse: 0x48, // 'H'
  DataRow: 0x44, // 'D'
  EmptyQueryResponse: 0x49, // 'I'
  ErrorResponse: 0x45, // 'E'
  FunctionCallResponse: 0x56, // 'V'
  NegotiateProtocolVersion: 0x76, // 'v'
  NoData: 0x6e, // 'n'
  NoticeResponse: 0x4e, // 'N'
  NotificationResponse: 0x41, // 'A'
  ParameterDescription: 0x74, // 't'
  ParameterStatus: 0x53, // 'S'
  ParseComplete: 0x31, // '1'
  PortalSuspended: 0x73, // 's'
  ReadyForQuery: 0x5a, // 'Z'
  RowDescription: 0x54, // 'T'
} as const;

/** Authentication request sub-codes (int32 after 'R'). */
export const AuthCode = {
  Ok: 0,
  CleartextPassword: 3,
  MD5Password: 5,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12,
} as const;

/** Special startup-packet codes (the int32 where a protocol version would be). */
export const StartupCode = {
  ProtocolV3: 196608, // 3.0
  SSLRequest: 80877103,
  GSSENCRequest: 80877104,
  CancelRequest: 80877102,
} as const;

/** Transaction status byte of ReadyForQuery. */
export const TxStatus = {
  Idle: 0x49, // 'I'
  InTransaction: 0x54, // 'T'
  Failed: 0x45, // 'E'
} as const;

/** The message types a logged-in client may send (PostgreSQL's SocketBackend refuses any other at its first byte). */
const REQUEST_TYPES = new Uint8Array(256);
for (const t of Object.values(Frontend)) if (t !== Frontend.Password) REQUEST_TYPES[t] = 1;

/** Null for a type byte a logged-in client may send, else why not (FrameReader's typeCheck once logged in). */
export function checkRequestType(type: number): string | null {
  return REQUEST_TYPES[type] === 1 ? null : `invalid frontend message type ${type}`;
}
