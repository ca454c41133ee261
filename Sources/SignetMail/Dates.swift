import FoundationEssentials
import SignetCore

/// Dates as people read them (UTC).
public enum Dates {
    /// `2026-01-27T10:00:00Z`.
    public static func iso(_ date: Date) -> String { UTCTime.format(date.timeIntervalSince1970) }

    /// `2026-01-27`.
    public static func day(_ date: Date) -> String { String(iso(date).prefix(10)) }

    /// `2026-01-27`, `2026-01-27T10:00:00Z`, `2026-01-27T10:00:00+01:00` or `2026-01-27 10:00:00` (UTC).
    public static func parse(_ text: String) -> Date? { UTCTime.parse(text).map(Date.init(timeIntervalSince1970:)) }

    /// An RFC 5322 Date: header.
    public static func parseHeader(_ text: String) -> Date? { UTCTime.parseMailDate(text).map(Date.init(timeIntervalSince1970:)) }

    /// "2026-01-27 10:00:00 UTC", as mail reports show times.
    public static func show(_ date: Date) -> String { UTCTime.format(date.timeIntervalSince1970, separator: " ", suffix: " UTC") }
}
