import SignetCore

/// The address in a From: header (`Alice <alice@example.com>` → `alice@example.com`).
public func mailAddress(_ header: String) -> String {
    if let open = header.lastIndex(of: "<"), let close = header[open...].firstIndex(of: ">") {
        return String(header[header.index(after: open)..<close]).trimmingSpaces().lowercased()
    }
    return header.trimmingSpaces().lowercased()
}
