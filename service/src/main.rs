fn main() -> anyhow::Result<()> {
    touxiang::cli::main()
}
