public enum AgentMain { public static func run() {} }
