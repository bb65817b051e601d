"""What the next Generator call is: the network it is shown to change, its prompt, and how hot it
samples; read from the state and the run archive, so a resumed run asks as the first run would."""
