import Foundation
import SignetCore
import Testing

@Suite("One version")
struct VersionFileTests {
    /// The top of the tree, from this file's path (Tests/SignetCoreTests/VersionFileTests.swift).
    private static let top = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("SignetVersion.string is the VERSION file's number, and the module's CK_VERSION takes its major and minor")
    func matchesVersionFile() throws {
        let file = try String(contentsOf: Self.top.appendingPathComponent("VERSION"), encoding: .utf8)
        let written = file.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(written == SignetVersion.string, "VERSION says \(written), SignetCore/Version.swift says \(SignetVersion.string): change both")
        let parts = written.split(separator: ".").compactMap { UInt8($0) }
        #expect(parts.count == 3, "VERSION must be major.minor.patch, found \(written)")
        #expect(SignetVersion.major == parts.first)
        #expect(SignetVersion.minor == parts.dropFirst().first)
    }
}
