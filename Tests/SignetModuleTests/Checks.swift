import Foundation
import Testing

/// Expectations for test bodies that run off Swift's cooperative pool (`offPool`): an `#expect` made
/// on another thread is recorded outside its test («unknown»), so the test itself would pass. These
/// collect the failures, and `report()`, called on the test's own task, records them there.
final class Checks: @unchecked Sendable {
    private let lock = NSLock()
    private var failures: [(String, SourceLocation)] = []
    private var known: [(reason: String, failed: Bool, detail: String)] = []

    func expect(_ condition: Bool, _ message: @autoclosure () -> String = "",
                fileID: String = #fileID, filePath: String = #filePath, line: Int = #line, column: Int = #column) {
        guard !condition else { return }
        let text = message()
        lock.withLock {
            failures.append(("Expectation failed" + (text.isEmpty ? "" : ": " + text),
                             SourceLocation(fileID: fileID, filePath: filePath, line: line, column: column)))
        }
    }

    /// A failure a known defect elsewhere causes (reported as a known issue; its absence is reported too).
    func knownIssue(_ reason: String, failed: Bool, _ detail: String) {
        lock.withLock { known.append((reason, failed, detail)) }
    }

    func report() {
        let (failures, known) = lock.withLock { (self.failures, self.known) }
        for (text, location) in failures { Issue.record(Comment(rawValue: text), sourceLocation: location) }
        for entry in known {
            withKnownIssue(Comment(rawValue: entry.reason)) {
                if entry.failed { Issue.record(Comment(rawValue: entry.detail)) }
            }
        }
    }
}
