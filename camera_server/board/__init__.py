"""Board: the light model, the serial protocol (trinket), the neopixel backend, the board emulator."""
