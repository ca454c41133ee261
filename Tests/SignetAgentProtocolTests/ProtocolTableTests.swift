import Foundation
import SignetAgentProtocol
import SignetCore
import SignetProtocolSamples
import Testing

private func body(_ frame: WireBuffer) -> [UInt8] { Array(frame.bytes.dropFirst(4)) }

/// `fields` (a body without its 5-byte header) walked by `layout`: nil when they hold exactly one value
/// of it, else what is wrong.
private func mismatch(_ fields: ArraySlice<UInt8>, _ layout: String) -> String? {
    Array(fields).withUnsafeBytes { raw in
        var reader = WireReader(raw)
        do throws(WireError) {
            try WireLayout.walk(layout, &reader)
            try reader.finish()
            return nil
        } catch {
            return error.reason
        }
    }
}

@Suite("Agent protocol table")
struct ProtocolTableTests {
    @Test("Every sample message's bytes are exactly what its kind's layout says")
    func samplesFollowTheTable() throws {
        // (kind byte, the kind the message names, its bytes) for every sample request and response.
        let frames = ProtocolSamples.everyRequest.map { ($0.messageKind.rawValue, body(AgentFrame.encode($0, id: 9))) }
            + ProtocolSamples.everyResponse.map { ($0.messageKind.rawValue, body(AgentFrame.encode($0, id: 9))) }
        for (kind, bytes) in frames {
            #expect(bytes[0] == kind)
            let row = kind < 0x80 ? AgentRequest.Kind(rawValue: kind).map { ($0.name, $0.layout) }
                                  : AgentResponse.Kind(rawValue: kind).map { ($0.name, $0.layout) }
            let (name, layout) = try #require(row, "kind 0x\(Hex.encode([kind])) has no row")
            #expect(mismatch(bytes[5...], layout) == nil, "\(name) (\(layout)): \(mismatch(bytes[5...], layout) ?? "")")
        }
    }

    @Test("The samples hold every kind, and every kind has a row in the table")
    func samplesCoverTheTable() {
        #expect(Set(ProtocolSamples.everyRequest.map(\.messageKind)) == Set(AgentRequest.Kind.allCases))
        #expect(Set(ProtocolSamples.everyResponse.map(\.messageKind)) == Set(AgentResponse.Kind.allCases))
        // Names are unique: they are what logs and the audit show.
        #expect(Set(AgentRequest.Kind.allCases.map(\.name)).count == AgentRequest.Kind.allCases.count)
        #expect(Set(AgentResponse.Kind.allCases.map(\.name)).count == AgentResponse.Kind.allCases.count)
        for kind in AgentRequest.Kind.allCases {
            #expect(!kind.answers.isEmpty, "\(kind.name) may get no answer")
            #expect(!kind.answers.contains(.error) && !kind.answers.contains(.notice), "\(kind.name): error and notice are implied")
        }
    }

    @Test("A frame whose fields do not follow its layout is refused by the walk and by the decoder")
    func walkRefusesWhatTheDecoderRefuses() throws {
        for request in ProtocolSamples.everyRequest where !request.messageKind.layout.isEmpty {
            var bytes = body(AgentFrame.encode(request, id: 9))
            bytes.append(0)  // one byte more than the layout holds
            #expect(mismatch(bytes[5...], request.messageKind.layout) != nil, "\(request.name)")
            bytes.removeLast(2)  // one byte less
            #expect(mismatch(bytes[5...], request.messageKind.layout) != nil, "\(request.name)")
            #expect(throws: WireError.self) { try bytes.withUnsafeBytes { try AgentFrame.decodeRequest($0) } }
        }
    }

    @Test("An unknown kind byte is a typed error, for requests and responses alike")
    func unknownKindIsTyped() {
        let known = Set(AgentRequest.Kind.allCases.map(\.rawValue)).union(AgentResponse.Kind.allCases.map(\.rawValue))
        for byte in UInt8.min...UInt8.max where !known.contains(byte) {
            let frame: [UInt8] = [byte, 0, 0, 0, 9]
            #expect(throws: WireError(.unknownKind, "unknown request kind 0x\(Hex.encode([byte]))")) {
                try frame.withUnsafeBytes { try AgentFrame.decodeRequest($0) }
            }
            #expect(throws: WireError(.unknownKind, "unknown response kind 0x\(Hex.encode([byte]))")) {
                try frame.withUnsafeBytes { try AgentFrame.decodeResponse($0) }
            }
        }
    }

    @Test("A length over the limit is a frameTooLarge error, by kind and not by its words")
    func frameTooLargeIsTyped() {
        let over = [UInt8]([0, 1, 0, 1]).withUnsafeBytes { prefix in Result { () throws(WireError) in try AgentFrame.bodyLength(prefix) } }
        guard case .failure(let error) = over else { Issue.record("65 537 bytes accepted"); return }
        #expect(error.kind == .frameTooLarge)
        let short = [UInt8]([0, 0, 0, 4]).withUnsafeBytes { prefix in Result { () throws(WireError) in try AgentFrame.bodyLength(prefix) } }
        guard case .failure(let shortError) = short else { Issue.record("4 bytes accepted"); return }
        #expect(shortError.kind == .malformed)
    }

    @Test("docs/protocol.md lists exactly the table's messages, with their kind bytes and answers")
    func documentationMatchesTheTable() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("docs/protocol.md"), encoding: .utf8)
        // Rows of the message tables: "| 0x06 | unlock | fields | `access` |".
        var requestRows: [UInt8: [String]] = [:], responseRows: [UInt8: [String]] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("| 0x") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 4, let byte = UInt8(cells[1].dropFirst(2), radix: 16) else { continue }
            if byte < 0x80 { requestRows[byte] = cells } else { responseRows[byte] = cells }
        }
        #expect(Set(requestRows.keys) == Set(AgentRequest.Kind.allCases.map(\.rawValue)), "request rows")
        #expect(Set(responseRows.keys) == Set(AgentResponse.Kind.allCases.map(\.rawValue)), "response rows")
        for kind in AgentRequest.Kind.allCases {
            guard let cells = requestRows[kind.rawValue] else { continue }
            #expect(cells[2] == "\(kind)", "0x\(Hex.encode([kind.rawValue])) is \(kind) in the code, \(cells[2]) in the docs")
            guard kind != .hello else { continue }  // its answer is written below its own table
            let documented = Set(cells[4].split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) })
            #expect(documented == Set(kind.answers.map { "\($0)" }), "\(kind): the docs answer \(documented), the table \(kind.answers)")
        }
        for kind in AgentResponse.Kind.allCases {
            guard let cells = responseRows[kind.rawValue] else { continue }
            #expect(cells[2].split(separator: " ").first.map(String.init) == "\(kind)", "0x\(Hex.encode([kind.rawValue])) is \(kind) in the code, \(cells[2]) in the docs")
        }
    }
}
