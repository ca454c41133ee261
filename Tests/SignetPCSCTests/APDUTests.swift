import SignetPCSC
import Testing

@Suite("APDU encoding and status words")
struct APDUTests {
    @Test("Short APDUs encode each ISO 7816 case")
    func shortCases() throws {
        #expect(try CommandAPDU(ins: 0x20, p2: 0x80).encoded() == [0x00, 0x20, 0x00, 0x80])
        #expect(try CommandAPDU(ins: 0xCA, le: 256).encoded() == [0x00, 0xCA, 0x00, 0x00, 0x00])
        #expect(try CommandAPDU(ins: 0x20, p2: 0x80, data: [1, 2]).encoded() == [0x00, 0x20, 0x00, 0x80, 0x02, 1, 2])
        #expect(try CommandAPDU.select(aid: [0xA0, 0x00]).encoded() == [0x00, 0xA4, 0x04, 0x00, 0x02, 0xA0, 0x00, 0x00])
    }

    @Test("Long data or Le switches to extended length")
    func extended() throws {
        let data = [UInt8](repeating: 7, count: 300)
        let encoded = try CommandAPDU(ins: 0x2A, data: data, le: 65536).encoded()
        #expect(Array(encoded.prefix(7)) == [0x00, 0x2A, 0x00, 0x00, 0x00, 0x01, 0x2C])
        #expect(encoded.count == 4 + 3 + 300 + 2)
        #expect(Array(encoded.suffix(2)) == [0x00, 0x00])
        #expect(try CommandAPDU(ins: 0xB0, le: 1000).encoded() == [0x00, 0xB0, 0x00, 0x00, 0x00, 0x03, 0xE8])
        #expect(throws: PCSCError.self) { try CommandAPDU(ins: 0xD6, data: [UInt8](repeating: 0, count: 70000)).encoded() }
    }

    @Test("Retry counters are read from VERIFY status words", arguments: [
        ([0x63, 0xC2], PINRetryStatus.triesLeft(2)), ([0x90, 0x00], .verified), ([0x69, 0x83], .blocked),
        ([0x6A, 0x88], .unsupported(sw: 0x6A88)),
    ] as [([UInt8], PINRetryStatus)])
    func retryStatus(_ sw: [UInt8], _ expected: PINRetryStatus) throws {
        #expect(PINRetryStatus(response: try ResponseAPDU(bytes: sw)) == expected)
    }

    @Test("A response without a status word is malformed")
    func tooShort() {
        #expect(throws: PCSCError.self) { try ResponseAPDU(bytes: [0x90]) }
    }

    @Test("Reader transport is guessed from names and contactless ATRs")
    func transport() {
        #expect(ReaderTransport.guess(readerName: "ACS ACR122U PICC Interface 00 00", atr: nil) == .nfc)
        #expect(ReaderTransport.guess(readerName: "Yubico YubiKey OTP+FIDO+CCID 00 00", atr: nil) == .usb)
        #expect(ReaderTransport.guess(readerName: "Identiv uTrust 3700 F CL Reader", atr: nil) == .nfc)
        #expect(ReaderTransport.guess(readerName: "Generic CCID", atr: [0x3B, 0x8F, 0x80, 0x01, 0x80]) == .nfc)
        #expect(ReaderTransport.guess(readerName: "Virtual PCD 00 00", atr: nil) == .virtual)
    }
}
