/**
 * The two ends of an NFC link, as the simulators see them. A phone (its software SE behind the
 * NFC controller) is a `ContactlessCard`; a car reader talks through a `ReaderTransport`.
 */
export interface ContactlessCard {
  /**
   * The reader's ECP polling frame (PROTOCOL.md §4.1) as the field comes up. The device learns
   * express mode and reader location from it; `false` = the device does not answer.
   */
  pollingFrame(frame: Uint8Array): boolean;
  /** One command APDU in, one response APDU out; never throws (errors are status words). */
  transmit(command: Uint8Array): Buffer;
  /** The RF field is gone (tearing, reader timeout, phone moved away): drop any session. */
  fieldLost(): void;
}

/** The reader's side of the link. */
export interface ReaderTransport {
  /** Emits the ECP frame and powers the field; resolves `false` when no device answers. */
  poll(frame: Buffer): Promise<boolean>;
  /** Sends one command APDU; rejects with `NfcLinkError` when the field is lost or the APDU times out. */
  transceive(command: Buffer): Promise<Buffer>;
}
