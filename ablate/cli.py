def main() -> None:
    print("ablate")
