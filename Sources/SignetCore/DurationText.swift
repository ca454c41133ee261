/// Durations in the words people read in messages and status lines: "45 s", "14 min 32 s", "2 h 5 min".
public enum DurationText {
    /// `seconds` rounded up to whole seconds; hours only from one hour on.
    public static func words(_ seconds: Double) -> String {
        let total = Int(seconds.rounded(.up))
        guard total < 3600 else { return "\(total / 3600) h \(total / 60 % 60) min" }
        let minutes = total / 60, rest = total % 60
        if minutes == 0 { return "\(rest) s" }
        return rest == 0 ? "\(minutes) min" : "\(minutes) min \(rest) s"
    }
}
