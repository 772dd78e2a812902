// The SQLSTATE codes shardgate itself produces (PostgreSQL Appendix A names), in one typed table.

export const SqlState = {
  SuccessfulCompletion: '00000',
  ConnectionException: '08000',
  ConnectionFailure: '08006',
  SqlClientUnableToEstablishSqlConnection: '08001',
  ProtocolViolation: '08P01',
  FeatureNotSupported: '0A000',
  InvalidParameterValue: '22023',
  NumericValueOutOfRange: '22003',
  InvalidTextRepresentation: '22P02',
  InvalidBinaryRepresentation: '22P03',
  CheckViolation: '23514',
  InFailedSqlTransaction: '25P02',
  InvalidAuthorizationSpecification: '28000',
  InvalidPassword: '28P01',
  InvalidCatalogName: '3D000',
  TransactionRollback: '40000',
  StatementCompletionUnknown: '40003',
  InvalidSqlStatementName: '26000',
  SyntaxError: '42601',
  DuplicatePreparedStatement: '42P05',
  TooManyConnections: '53300',
  ConfigurationLimitExceeded: '53400',
  QueryCanceled: '57014',
  AdminShutdown: '57P01',
  IdleSessionTimeout: '57P05',
  CannotConnectNow: '57P03',
  IoError: '58030',
  InternalError: 'XX000',
} as const;

export type SqlStateCode = (typeof SqlState)[keyof typeof SqlState];
