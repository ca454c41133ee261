import SignetAgentProtocol
import SignetCore
import SignetProtocolSamples
import SignetTestSupport
import Testing

private func secret(_ text: String) -> SharedSecret { SharedSecret(SecretBytes(copying: Array(text.utf8))) }
private let everyRequest = ProtocolSamples.everyRequest
private let everyResponse = ProtocolSamples.everyResponse

private func body(_ frame: WireBuffer) -> [UInt8] { Array(frame.bytes.dropFirst(4)) }

@Suite("Agent protocol")
struct ProtocolTests {
    @Test("Every request survives encode, decode and encode unchanged, with its id")
    func requestRoundTrip() throws {
        for (index, request) in everyRequest.enumerated() {
            let first = AgentFrame.encode(request, id: UInt32(index) + 0x0100_0000).bytes
            let decoded = try body(AgentFrame.encode(request, id: UInt32(index) + 0x0100_0000)).withUnsafeBytes { try AgentFrame.decodeRequest($0) }
            let again = decoded.request
            #expect(decoded.id == UInt32(index) + 0x0100_0000)
            #expect(again.kind == request.kind)
            #expect(AgentFrame.encode(again, id: decoded.id).bytes == first, "request \(request.name)")
        }
    }

    @Test("Every response survives encode and decode unchanged")
    func responseRoundTrip() throws {
        for response in everyResponse {
            let frame = body(AgentFrame.encode(response, id: 77))
            let decoded = try frame.withUnsafeBytes { try AgentFrame.decodeResponse($0) }
            #expect(decoded.id == 77)
            #expect(decoded.response == response)
        }
    }

    @Test("A hello frame has exactly the documented bytes")
    func helloBytes() {
        let frame = AgentFrame.encode(AgentRequest.hello(minVersion: 1, maxVersion: 1, client: "t"), id: 1).bytes
        let expected: [UInt8] = [0, 0, 0, 26, 0x01, 0, 0, 0, 1] + Array("signet-agent".utf8) + [0, 1, 0, 1, 0, 0, 0, 1, 0x74]
        #expect(frame == expected)
    }

    @Test("A sign frame has exactly the documented bytes")
    func signBytes() {
        let frame = AgentFrame.encode(AgentRequest.sign(key: "k", mechanism: WireMechanism(type: 0x1041), data: [0xAA]), id: 2).bytes
        let expected: [UInt8] = [0, 0, 0, 47, 0x08, 0, 0, 0, 2, 0, 0, 0, 1, 0x6B]
            + [0, 0, 0, 0, 0, 0, 0x10, 0x41] + Array(repeating: 0, count: 16) + [0, 0, 0, 0] + [0, 0, 0, 0] + [0, 0, 0, 1, 0xAA]
        #expect(frame == expected)
    }

    @Test("The token-layer requests have the documented kinds and bytes: 0x17 to 0x1A, repair-ledger with an optional URI")
    func tokenLayerRequestBytes() {
        #expect(AgentFrame.encode(AgentRequest.tokenDetails, id: 4).bytes == [0, 0, 0, 5, 0x17, 0, 0, 0, 4])
        #expect(AgentFrame.encode(AgentRequest.repairLedger(token: nil), id: 4).bytes == [0, 0, 0, 6, 0x18, 0, 0, 0, 4, 0])
        #expect(AgentFrame.encode(AgentRequest.repairLedger(token: "k"), id: 4).bytes == [0, 0, 0, 11, 0x18, 0, 0, 0, 4, 1, 0, 0, 0, 1, 0x6B])
        #expect(AgentFrame.encode(AgentRequest.listReaders, id: 4).bytes == [0, 0, 0, 5, 0x19, 0, 0, 0, 4])
        #expect(AgentFrame.encode(AgentRequest.versions, id: 4).bytes == [0, 0, 0, 5, 0x1A, 0, 0, 0, 4])
    }

    @Test("The prompting requests have the documented kinds and bytes: 0x1C with name/value pairs, 0x1D with an optional URI")
    func promptingRequestBytes() {
        #expect(AgentFrame.encode(AgentRequest.clientEnvironment(entries: [("tty", "/x")]), id: 4).bytes
            == [0, 0, 0, 22, 0x1C, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 3] + Array("tty".utf8) + [0, 0, 0, 2] + Array("/x".utf8))
        #expect(AgentFrame.encode(AgentRequest.unlockAsking(token: nil), id: 4).bytes == [0, 0, 0, 6, 0x1D, 0, 0, 0, 4, 0])
        #expect(AgentFrame.encode(AgentRequest.unlockAsking(token: "k"), id: 4).bytes == [0, 0, 0, 11, 0x1D, 0, 0, 0, 4, 1, 0, 0, 0, 1, 0x6B])
        // The outcomes appended for prompts: 10 cancelled, 11 timed out, 12 nowhere to ask.
        #expect(AccessOutcome.Kind.cancelled.rawValue == 10 && AccessOutcome.Kind.timedOut.rawValue == 11 && AccessOutcome.Kind.nowhereToAsk.rawValue == 12)
    }

    @Test("A token entry ends with the card's own counter as a typed value: u8 state, then tries left only with state 1")
    func cardCounterBytes() throws {
        func tail(_ counter: CardCounter) -> [UInt8] {
            var token = ProtocolSamples.sampleToken
            token.cardCounter = counter
            return Array(AgentFrame.encode(AgentResponse.tokens([token]), id: 1).bytes.suffix(counter == .ok(triesLeft: 3) ? 10 : 6))
        }
        // u32 changes (7), then the counter.
        #expect(tail(.notReported) == [0, 0, 0, 7, 0, 0])
        #expect(tail(.ok(triesLeft: 3)) == [0, 0, 0, 7, 1, 1, 0, 0, 0, 3])
        #expect(tail(.ok(triesLeft: nil)) == [0, 0, 0, 7, 1, 0])
        #expect(tail(.countLow) == [0, 0, 0, 7, 2, 0])
        #expect(tail(.finalTry) == [0, 0, 0, 7, 3, 0])
        #expect(tail(.blocked) == [0, 0, 0, 7, 4, 0])
        // An unknown state, or tries left with another state, does not decode.
        var frame = body(AgentFrame.encode(AgentResponse.tokens([ProtocolSamples.sampleToken]), id: 1))
        frame.removeLast(6)
        for bad: [UInt8] in [[5, 0], [3, 1, 0, 0, 0, 1], [0, 2]] {
            let attempt = frame + bad
            #expect(throws: WireError.self) { try attempt.withUnsafeBytes { try AgentFrame.decodeResponse($0) } }
        }
        #expect(try (frame + [3, 0]).withUnsafeBytes { try AgentFrame.decodeResponse($0) }.response
            == .tokens([{ var t = ProtocolSamples.sampleToken; t.cardCounter = .finalTry; return t }()]))
    }

    @Test("A readers response has exactly the documented bytes")
    func readersBytes() {
        let frame = AgentFrame.encode(AgentResponse.readers([ReaderEntry(name: "r", cardPresent: true, state: ["p"], atr: [0x3B], transport: "u")]), id: 5)
        let expected: [UInt8] = [0, 0, 0, 35, 0x8F, 0, 0, 0, 5, 0, 0, 0, 1]
            + [0, 0, 0, 1, 0x72] + [1] + [0, 0, 0, 1, 0, 0, 0, 1, 0x70] + [1, 0, 0, 0, 1, 0x3B] + [0, 0, 0, 1, 0x75]
        #expect(frame.bytes == expected)
    }

    @Test("The policy request is kind 0x1E with no fields, and its answer 0x92 has exactly the documented bytes")
    func policyBytes() {
        #expect(AgentFrame.encode(AgentRequest.policy, id: 4).bytes == [0, 0, 0, 5, 0x1E, 0, 0, 0, 4])
        let report = PolicyReport(
            files: [.init(path: "f", administrator: true, state: .loaded)],
            rules: [.init(file: "f", line: 2, action: "deny", program: "*", script: nil, key: "*", operations: ["sign"])],
            recent: [.init(program: "p", pid: 7, key: "k", operation: "sign", verdict: .denied, time: "t", count: 1)])
        func text(_ value: String) -> [UInt8] { [0, 0, 0, UInt8(value.utf8.count)] + Array(value.utf8) }
        let files: [UInt8] = [0, 0, 0, 1] + text("f") + [1, 1] + [0, 0, 0, 0]
        let rules: [UInt8] = [0, 0, 0, 1] + text("f") + [0, 0, 0, 2] + text("deny") + text("*") + [0] + text("*") + [0, 0, 0, 1] + text("sign")
        let recent: [UInt8] = [0, 0, 0, 1] + text("p") + [0, 0, 0, 7] + text("k") + text("sign") + [3] + text("t") + [0, 0, 0, 1]
        let body: [UInt8] = [0x92, 0, 0, 0, 5] + files + rules + recent
        #expect(AgentFrame.encode(AgentResponse.policy(report), id: 5).bytes == [0, 0, 0, UInt8(body.count)] + body)
    }

    @Test("The reload request is kind 0x20 with no fields, and its answer 0x93 has exactly the documented bytes")
    func reloadBytes() {
        #expect(AgentFrame.encode(AgentRequest.reload, id: 6).bytes == [0, 0, 0, 5, 0x20, 0, 0, 0, 6])
        let report = ReloadReport(settings: [.init(name: "n", value: "v")], clientRules: 3, refusals: ["r"], problems: ["r", "p"])
        func text(_ value: String) -> [UInt8] { [0, 0, 0, UInt8(value.utf8.count)] + Array(value.utf8) }
        let body: [UInt8] = [0x93, 0, 0, 0, 7] + [0, 0, 0, 1] + text("n") + text("v") + [0, 0, 0, 3]
            + [0, 0, 0, 1] + text("r") + [0, 0, 0, 2] + text("r") + text("p")
        #expect(AgentFrame.encode(AgentResponse.reloaded(report), id: 7).bytes == [0, 0, 0, UInt8(body.count)] + body)
        let decoded = body.withUnsafeBytes { try? AgentFrame.decodeResponse($0) }
        #expect(decoded?.response == .reloaded(report))
    }

    @Test("An error response carries a stable numeric code")
    func errorBytes() {
        let frame = AgentFrame.encode(AgentResponse.error(.notUnlocked, message: ""), id: 3).bytes
        #expect(frame == [0, 0, 0, 11, 0xFF, 0, 0, 0, 3, 0, 24, 0, 0, 0, 0])
    }

    @Test("Length prefixes over the maximum, or shorter than a header, are refused before any allocation")
    func lengthPrefix() {
        for prefix: [UInt8] in [[0xFF, 0xFF, 0xFF, 0xFF], [0, 1, 0, 1], [0, 0, 0, 0], [0, 0, 0, 4]] {
            #expect(throws: WireError.self) { try prefix.withUnsafeBytes { try AgentFrame.bodyLength($0) } }
        }
        let ok = [UInt8]([0, 1, 0, 0]).withUnsafeBytes { try? AgentFrame.bodyLength($0) }
        #expect(ok == 65536)
    }

    @Test("An unknown request kind is an unknownKind error, and its id can still be read, so the agent can answer it")
    func unknownKind() throws {
        let frame: [UInt8] = [0x7E, 0, 0, 0, 9]
        #expect(throws: WireError(.unknownKind, "unknown request kind 0x7e")) { try frame.withUnsafeBytes { try AgentFrame.decodeRequest($0) } }
        #expect(frame.withUnsafeBytes { AgentFrame.header($0)?.id } == 9)
    }

    @Test("Every truncation of every request fails with an error, never a crash or a wrong message")
    func truncations() {
        for request in everyRequest {
            let full = body(AgentFrame.encode(request, id: 5))
            for length in 0..<full.count {
                let prefix = Array(full[0..<length])
                let result = prefix.withUnsafeBytes { try? AgentFrame.decodeRequest($0) }
                #expect(result == nil, "\(request.name) decoded from its first \(length) bytes")
            }
            var extended = full
            extended.append(0)
            #expect(throws: WireError.self) { try extended.withUnsafeBytes { try AgentFrame.decodeRequest($0) } }
        }
    }

    @Test("Thousands of random frames and mutated real frames are rejected or decoded, never crash")
    func fuzz() {
        var generator = SplitMix(seed: 0x5167_4E45_5400_0001)
        var rejected = 0
        let seeds = everyRequest.map { body(AgentFrame.encode($0, id: 1)) }
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int(generator.next() % 300)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            } else {
                bytes = seeds[Int(generator.next() % UInt64(seeds.count))]
                for _ in 0..<(1 + generator.next() % 4) where !bytes.isEmpty {
                    bytes[Int(generator.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: generator.next())
                }
            }
            if (try? bytes.withUnsafeBytes { try AgentFrame.decodeRequest($0) }) == nil { rejected += 1 }
            _ = try? bytes.withUnsafeBytes { try AgentFrame.decodeResponse($0) }
        }
        // Random bytes almost never form a valid request; mutated real frames often do.
        #expect(rejected > 5_000)
    }

    @Test("A length field larger than the frame is refused without allocating it")
    func hugeInnerLength() {
        // lock(token: some) whose string claims 4 GiB.
        let frame: [UInt8] = [0x07, 0, 0, 0, 1, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0x41]
        #expect(throws: WireError.self) { try frame.withUnsafeBytes { try AgentFrame.decodeRequest($0) } }
        let array: [UInt8] = [0x83, 0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF]
        #expect(throws: WireError.self) { try array.withUnsafeBytes { try AgentFrame.decodeResponse($0) } }
    }

    @Test("Codes are carried byte for byte, case and spaces included")
    func codeBytes() throws {
        let code = "Pa ss-É1"
        let frame = body(AgentFrame.encode(.unlock(token: nil, code: secret(code), finalTry: false), id: 1))
        let decoded = try frame.withUnsafeBytes { try AgentFrame.decodeRequest($0) }
        guard case .unlock(_, let received, _) = decoded.request else { Issue.record("not an unlock"); return }
        let bytes = received.use { $0.withUnsafeBytes { Array($0) } }
        #expect(bytes == Array(code.utf8))
    }

    @Test("Clearing a frame buffer zeroes the code it held")
    func bufferClears() {
        let buffer = AgentFrame.encode(.unlock(token: nil, code: secret("SECRETCODE"), finalTry: false), id: 1)
        let before = buffer.bytes
        #expect(before.count > 10)
        buffer.clear()
        #expect(buffer.count == 0)
        let written = AgentFrame.encode(AgentRequest.status, id: 1, into: buffer).bytes
        #expect(written.count == 9)
    }

    @Test("Error codes have stable names")
    func errorNames() {
        #expect(AgentErrorCode.notUnlocked.description == "not-unlocked")
        #expect(AgentErrorCode.tokenAbsent.rawValue == 22)
        #expect(AgentErrorCode(rawValue: 1234).description == "error-1234")
    }
}


@Suite("Object pages")
struct ObjectPageTests {
    /// `count` certificates with `valueBytes` of DER each.
    func listing(_ count: Int, valueBytes: Int) -> ([ObjectEntry], [[UInt8]]) {
        let entries = (0..<count).map { ObjectEntry(uri: "pkcs11:token=T;id=%\(String($0 % 256, radix: 16));object=c\($0);type=cert",
                                                  kind: .certificate, label: "c\($0)", id: [UInt8($0 % 256)], keyType: nil, bits: 0, usages: [],
                                                  subject: Array(repeating: 0x41, count: 90)) }
        return (entries, entries.indices.map { [UInt8](repeating: UInt8($0 % 256), count: valueBytes) })
    }

    @Test("Pages cover every entry once, in order, with its value, and each answer fits a frame")
    func pagesCoverTheListing() throws {
        let (entries, values) = listing(1000, valueBytes: 900)
        var start = 0, seen: [ObjectEntry] = [], seenValues: [[UInt8]] = [], pages = 0
        while true {
            let page = ObjectPage.slice(entries, values: values, from: start)
            pages += 1
            let frame = AgentFrame.encode(AgentResponse.objectPage(page), id: 7)
            #expect(frame.count - 4 <= AgentProtocol.maximumFrame)
            let decoded = try frame.bytes.dropFirst(4).withUnsafeBytes { try AgentFrame.decodeResponse($0) }
            #expect(decoded.response == .objectPage(page))
            seen += page.objects
            seenValues += page.values
            guard let next = page.next else { break }
            #expect(Int(next) == start + page.objects.count)
            start = Int(next)
        }
        #expect(seen == entries)
        #expect(seenValues == values)
        #expect(pages > 10 && pages < 30, "\(pages) pages")
    }

    @Test("An entry whose value alone exceeds a page starts the next page and goes without its value; past the end is an empty last page")
    func oversizedValue() {
        let (entries, _) = listing(3, valueBytes: 0)
        let values: [[UInt8]] = [[1], Array(repeating: 2, count: AgentProtocol.maximumFrame), [3]]
        let first = ObjectPage.slice(entries, values: values, from: 0)
        #expect(first.objects.count == 1 && first.values == [[1]] && first.next == 1)
        let second = ObjectPage.slice(entries, values: values, from: 1)
        #expect(second.objects == [entries[1], entries[2]] && second.values == [[], [3]] && second.next == nil)
        #expect(ObjectPage.slice(entries, values: values, from: 2).next == nil)
        #expect(ObjectPage.slice(entries, values: values, from: 9) == ObjectPage(objects: [], values: [], next: nil))
    }

    @Test("A page whose values do not match its objects is refused")
    func mismatchedValuesRefused() {
        let frame = AgentFrame.encode(AgentResponse.objectPage(ObjectPage(objects: [], values: [[1]], next: nil)), id: 1)
        #expect(throws: WireError.self) { try frame.bytes.dropFirst(4).withUnsafeBytes { try AgentFrame.decodeResponse($0) } }
    }
}
