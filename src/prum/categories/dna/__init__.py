"""The DNA category: STR profiles, the Prüm match rules, the genotype index (docs/dna.md)."""
