/** Scopes an operator token can carry (ARCHITECTURE.md "Trust and transport"). */
export const OPERATOR_SCOPES = ['vehicles:write', 'keys:read', 'keys:write', 'audit:read'] as const;
export type OperatorScope = (typeof OPERATOR_SCOPES)[number];

export const OPERATOR_TOKEN_ISSUER = 'digital-key-server';
export const OPERATOR_TOKEN_AUDIENCE = 'operator-api';
