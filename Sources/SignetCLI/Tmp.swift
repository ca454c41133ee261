public struct SignetCommand { public static func main() {} }
