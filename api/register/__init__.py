"""The district's register of migrant workers: departures, and the person view built from them
and the returnee records (who left, who is abroad, who came back and how often)."""
