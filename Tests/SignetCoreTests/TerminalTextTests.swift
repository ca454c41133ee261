import SignetCore
import Testing

@Suite("Console.safe: terminal controls as visible escapes")
struct TerminalTextTests {
    @Test("C0, DEL, C1, line separators and bidi controls become visible escapes; other text, tabs aside, stays as it is")
    func escapes() {
        #expect(Console.safe("a\u{1B}[2Kb\nc\rd\te") == "a\\e[2Kb\\nc\\rd\\te")
        #expect(Console.safe("\u{0}\u{7}\u{7F}\u{85}\u{9B}") == "\\u{0}\\u{7}\\u{7F}\\u{85}\\u{9B}")
        #expect(Console.safe("x\u{202E}y\u{2066}z\u{200E}\u{200F}\u{61C}\u{2028}") == "x\\u{202E}y\\u{2066}z\\u{200E}\\u{200F}\\u{61C}\\u{2028}")
        #expect(Console.safe("Zoë Ünal → Root, 東京 \\e") == "Zoë Ünal → Root, 東京 \\e")
    }

    @Test("Escaping twice changes nothing")
    func idempotent() {
        let once = Console.safe("\u{1B}[1A\r\n\u{202E}")
        #expect(Console.safe(once) == once)
    }
}
