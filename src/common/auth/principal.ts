/** Who is calling on the mTLS listener, decided from the client certificate alone. */
export type Principal =
  | { kind: 'partner'; partner: string; fingerprint: string }
  | { kind: 'vehicle'; vehicleId: string; vin: string; fingerprint: string };

export type PrincipalKind = Principal['kind'];
