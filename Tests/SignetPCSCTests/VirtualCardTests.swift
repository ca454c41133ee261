import SignetVirtualCard
import Testing

/// The virtual PIV card's command handling on its own (no pcscd): what OpenSC relies on.
@Suite("Virtual PIV card commands")
struct VirtualCardTests {
    let card = VirtualCard(pin: Array("123456".utf8), guid: Array(repeating: 0x11, count: 16))
    static let chuid: [UInt8] = [0x5F, 0xC1, 0x02]

    func select() {
        #expect(Array(card.respond(to: [0x00, 0xA4, 0x04, 0x00, 0x05] + VirtualCard.pivAID).suffix(2)) == [0x90, 0x00])
    }

    @Test("GET DATA needs the application selected; the CHUID carries the GUID")
    func getData() {
        #expect(card.respond(to: [0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03] + Self.chuid + [0x00]) == [0x69, 0x85])
        select()
        let answer = card.respond(to: [0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03] + Self.chuid + [0x00])
        #expect(answer.first == 0x53)
        #expect(Array(answer.suffix(2)) == [0x90, 0x00])
        #expect(answer.windowed(card.guid))
        #expect(card.respond(to: [0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x0A, 0x00]) == [0x6A, 0x82])  // no such object
    }

    @Test("Chained commands (CLA 0x10) and extended lengths reach the same answer as one short command")
    func chainingAndExtended() {
        select()
        let short = card.respond(to: [0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03] + Self.chuid + [0x00])
        #expect(card.respond(to: [0x10, 0xCB, 0x3F, 0xFF, 0x02, 0x5C, 0x03]) == [0x90, 0x00])
        #expect(card.respond(to: [0x00, 0xCB, 0x3F, 0xFF, 0x03] + Self.chuid + [0x00]) == short)
        #expect(card.respond(to: [0x00, 0xCB, 0x3F, 0xFF, 0x00, 0x00, 0x05, 0x5C, 0x03] + Self.chuid + [0x00, 0x00]) == short)
        #expect(card.respond(to: [0x00, 0xCB, 0x3F, 0xFF, 0x09, 0x5C]) == [0x67, 0x00])  // Lc longer than the data
    }

    @Test("GENERAL AUTHENTICATE wants the PIN verified and a key in the slot")
    func authenticateNeedsPIN() {
        select()
        let template: [UInt8] = [0x7C, 0x06, 0x82, 0x00, 0x81, 0x02, 0x01, 0x02]
        #expect(card.respond(to: [0x00, 0x87, 0x07, 0x9A, UInt8(template.count)] + template) == [0x6A, 0x88])  // empty slot
        #expect(card.respond(to: [0x00, 0x20, 0x00, 0x80, 0x08] + Array("123456".utf8) + [0xFF, 0xFF]) == [0x90, 0x00])
        #expect(card.respond(to: [0x00, 0x20, 0xFF, 0x80]) == [0x90, 0x00])  // log out
        #expect(card.respond(to: [0x00, 0x20, 0x00, 0x80]) == [0x63, 0xC3])
    }
}

extension Array where Element == UInt8 {
    /// Whether `part` occurs in this array.
    func windowed(_ part: [UInt8]) -> Bool {
        guard part.count <= count else { return false }
        return (0...(count - part.count)).contains { Array(self[$0..<($0 + part.count)]) == part }
    }
}
