/** Files the dev PKI writes (`npm run pki:dev`) and the server reads. */
export const PKI_FILES = {
  vehicleOemRootCert: 'vehicle-oem-root.crt',
  vehicleOemRootKey: 'vehicle-oem-root.key',
  deviceOemCaCert: 'device-oem-ca.crt',
  deviceOemCaKey: 'device-oem-ca.key',
  deviceOemCaCrossCert: 'device-oem-ca-cross.crt',
  instanceCaCert: 'instance-ca.crt',
  instanceCaKey: 'instance-ca.key',
  serverCert: 'server.crt',
  serverKey: 'server.key',
  deviceOemClientCert: 'device-oem-client.crt',
  deviceOemClientKey: 'device-oem-client.key',
  deviceOemServerCert: 'device-oem-server.crt',
  deviceOemServerKey: 'device-oem-server.key',
  /** The server's client certificate for its calls to Device OEM backends (notifications). */
  serverClientCert: 'server-client.crt',
  serverClientKey: 'server-client.key',
  telematicsGatewayCert: 'telematics-gateway.crt',
  telematicsGatewayKey: 'telematics-gateway.key',
  telematicsKey: 'telematics.key',
  telematicsPublicKey: 'telematics.pub',
  ktsKey: 'kts.key',
  ktsPublicKey: 'kts.pub',
  operatorTokenKey: 'operator-token.key',
  operatorTokenPublicKey: 'operator-token.pub',
  /** 32 random bytes, base64: encrypts secrets at rest (pairing verifiers). */
  dataEncryptionKey: 'data-encryption.key',
} as const;

export type PkiFileId = keyof typeof PKI_FILES;
